"""Places named in a request -> IANA zones, and the clock reader that uses them."""

from __future__ import annotations

import zoneinfo

import pytest

from skillswitch.tools.phrasing import ARGUMENT_READERS, place_timezone
from skillswitch.tools.places import _table, places_named

pytestmark = pytest.mark.skipif(
    not _table("zone.tab") or not _table("iso3166.tab"),
    reason="the tz database's tables (zone.tab, iso3166.tab) are not installed",
)


@pytest.mark.parametrize(
    ("request_text", "zone"),
    [
        ("What time is it in Japan?", "Asia/Tokyo"),
        ("time now in India", "Asia/Kolkata"),
        ("what time is it in Germany", "Europe/Berlin"),  # Busingen keeps Berlin's clock
        ("what's the time in the UK", "Europe/London"),
        ("current time in Spain", "Europe/Madrid"),  # the mainland; the Canaries differ
        ("what is the time in China", "Asia/Shanghai"),
        ("What time is it in South Korea?", "Asia/Seoul"),
        ("What time is it in Bosnia & Herzegovina?", "Europe/Sarajevo"),
        ("What time is it in Côte d’Ivoire?", "Africa/Abidjan"),
        ("What time is it in Beijing?", "Asia/Shanghai"),
        ("what time is it in Paris, France", "Europe/Paris"),
        ("current time in Sydney, Australia", "Australia/Sydney"),
        ("What time is it in Los Angeles, California?", "America/Los_Angeles"),
        ("What time is it in Buenos Aires, Argentina?", "America/Argentina/Buenos_Aires"),
        ("What time is it in Tokyo right now?", "Asia/Tokyo"),
        ("What time is it in Tokyo, please?", "Asia/Tokyo"),
        ("What time is it in Samoa?", "Pacific/Apia"),  # was American Samoa's, a day behind
        ("What time is it in American Samoa?", "Pacific/Pago_Pago"),
        ("What time is it in Vancouver, BC?", "America/Vancouver"),
        ("What time is it in Los Angeles, CA?", "America/Los_Angeles"),
        ("What time is it in Mexico City?", "America/Mexico_City"),
        ("What time is it in São Paulo?", "America/Sao_Paulo"),
        ("what time is it in New York City", "America/New_York"),
    ],
)
def test_cities_and_countries_of_one_clock(request_text: str, zone: str) -> None:
    assert place_timezone(request_text) == zone
    assert ARGUMENT_READERS["clock"](request_text) == {"timezone": zone}


@pytest.mark.parametrize(
    "request_text",
    [
        # Each was answered with another place's time: Europe/Paris, Europe/London,
        # America/Vancouver, or UTC for a place the reader did not know.
        "What time is it in Paris, Texas?",
        "What time is it in London, Ontario?",
        "What time is it in Vancouver, Washington?",
        "What time is it in Victoria, British Columbia?",
        "What time is it in Springfield?",
        "What time is it in California?",
        "What time is it in the US?",  # several zones
        "What time is it in Russia?",
        "What time is it in Georgia?",  # a country and a state
        "What time is it in Congo?",  # two countries
        "what's the time in my city",
        "What time is it in Jersey City?",  # was Europe/Jersey
        "What time is it in Chatham, Kent?",  # was Pacific/Chatham
        "What time is it in Victoria, BC?",  # was Australia/Victoria
        "What time is it in Davis?",  # was Antarctica/Davis
        "What time is it in Paris, TX?",
        "What time is it on the moon?",  # was UTC
        "What time is it here?",  # was UTC
        "What time is it in 東京?",  # was UTC
        "What time is it in Москва?",
    ],
)
def test_a_place_without_one_zone_is_declined(request_text: str) -> None:
    assert places_named(request_text).ambiguous
    assert place_timezone(request_text) is None
    assert ARGUMENT_READERS["clock"](request_text) is None


@pytest.mark.parametrize(
    "request_text", ["what time is it right now", "what time is it at the moment", "date today"]
)
def test_no_place_is_utc(request_text: str) -> None:
    assert places_named(request_text) == places_named("")
    assert not places_named(request_text).ambiguous


def test_every_zone_read_is_one_the_clock_can_load() -> None:
    from skillswitch.tools.places import _names

    zones = {value for kind, value in _names().values() if kind == "city"}
    zones |= {z for name in ("japan", "china", "spain", "uk") for z in places_named(name).zones}
    assert len(zones) > 300
    for zone in zones:
        zoneinfo.ZoneInfo(zone)
