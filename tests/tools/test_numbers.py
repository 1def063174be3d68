"""The calculator's number theory: primality against a sieve and against the composites that
fool Miller-Rabin with the most bases."""

from __future__ import annotations

import pytest

from skillswitch.tools.numbers import IS_PRIME_LIMIT, is_prime, smallest_factor


def test_is_prime_agrees_with_a_sieve() -> None:
    limit = 50_000
    sieve = [True] * limit
    sieve[0] = sieve[1] = False
    for p in range(2, int(limit**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = [False] * len(range(p * p, limit, p))
    assert [n for n in range(limit) if is_prime(n)] == [n for n in range(limit) if sieve[n]]


@pytest.mark.parametrize(
    "composite",
    [
        3_215_031_751,  # strong pseudoprime to bases 2, 3, 5 and 7
        3_825_123_056_546_413_051,  # to bases 2 up to 23
        318_665_857_834_031_151_167_461,  # to bases 2 up to 37
    ],
)
def test_strong_pseudoprimes_are_composite(composite: int) -> None:
    assert not is_prime(composite)


def test_large_primes_and_the_limit() -> None:
    assert is_prime(2**61 - 1)
    assert is_prime(2**31 - 1)
    assert not is_prime((2**31 - 1) * 1_000_003)  # two primes over 100,000
    assert IS_PRIME_LIMIT == 3_317_044_064_679_887_385_961_981  # itself a base-2..41 spsp
    with pytest.raises(ValueError, match=r"exact up to 3\.3e24"):
        is_prime(IS_PRIME_LIMIT)


def test_smallest_factor() -> None:
    assert smallest_factor(221) == 13
    assert smallest_factor(2**10) == 2
    assert smallest_factor((2**31 - 1) * 1_000_003) is None  # no factor below 100,000
