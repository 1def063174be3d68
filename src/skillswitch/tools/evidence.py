"""Argument evidence: does a request hold what a tool needs to be called?

"Find me a train" is about the train search tool but gives none of its required arguments
(from, to, date); "find a train from Boston to New York on May 3" gives them all. BFCL counts the
first as a request no tool applies to, and so does a deployment whose model cannot call the tool
without asking back. The encoder's relevance sees only the topic, so a request that names the
topic and nothing else scores as high as a complete one.

An :class:`EvidenceModel` corrects a tool's relevance by four measures of the request and the
tool: the request's length in words, the number of the tool's required parameters, the number of
value-like spans in the request (numbers, quoted text, e-mail addresses, URLs, capitalised names
inside a sentence, non-Latin words), and the share of the required parameters those spans could
fill. It is a logistic model of "a tool applies" over relevance and those measures, fitted by
``skillswitch fit tools`` on held-out requests with and without a tool, written in relevance
units (the relevance at which relevance alone would give the same odds), so the "no tool
applies" threshold stays on the relevance scale. Measured in benchmarks/tool_retrieval.py
(``--fit-live-multiple live``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from skillswitch.router.logistic import fit_logistic

__all__ = [
    "EVIDENCE_MEASURES",
    "EvidenceModel",
    "evidence_measures",
    "fit_evidence_model",
    "request_measures",
    "required_parameters",
]

FloatArray = npt.NDArray[np.float64]

EVIDENCE_MEASURES = ("words", "required", "values", "covered")
"""log(1 + words in the request), the tool's required parameters, log(1 + value-like spans in
the request), and min(spans, required) / max(required, 1)."""

_WORD = re.compile(r"\w+")
_VALUE = re.compile(r"\d|\"[^\"]+\"|'[^' ]+'|\S+@\S+|https?://\S+|\b[A-Z][a-zA-Z]+|[^\x00-\x7f]+")
_SENTENCE_END = ".!?:"


def request_measures(text: str) -> tuple[int, int]:
    """(words, value-like spans) of ``text``. A capitalised word counts as a value (a name, a
    place) unless it starts a sentence."""
    values = 0
    for match in _VALUE.finditer(text):
        if match.group()[0].isupper():
            before = text[: match.start()].rstrip()
            if not before or before[-1] in _SENTENCE_END:
                continue
        values += 1
    return len(_WORD.findall(text)), values


def required_parameters(schema: Mapping[str, Any]) -> int:
    """How many parameters a tool's JSON Schema input requires."""
    required = schema.get("required") if isinstance(schema, Mapping) else None
    if not isinstance(required, (list, tuple)):
        return 0
    return sum(1 for name in required if isinstance(name, str))


def evidence_measures(words: int, values: int, required: FloatArray) -> FloatArray:
    """(tools, 4) measures (:data:`EVIDENCE_MEASURES`) of a request of ``words`` words and
    ``values`` value-like spans against tools with ``required`` required parameters."""
    return np.column_stack(
        [
            np.full(required.shape, math.log1p(words)),
            required,
            np.full(required.shape, math.log1p(values)),
            np.minimum(values, required) / np.maximum(required, 1.0),
        ]
    )


@dataclass(frozen=True, slots=True)
class EvidenceModel:
    """Relevance corrected by argument evidence: ``relevance_weight * relevance + sum(weights *
    (measures - mean) / scale) + offset``.

    The terms are the log-odds that a tool applies, divided by how fast those odds grow with
    relevance alone: the corrected relevance of a request is the relevance at which the
    relevance-only model would give it the same odds, so thresholds keep their scale.

    >>> model = EvidenceModel(mean=(2.0, 3.0, 1.0, 0.5), scale=(1.0, 1.0, 1.0, 0.5),
    ...                       weights=(0.0, -0.05, 0.02, 0.04))
    >>> [round(float(r), 3) for r in model.adjust([0.6], "find me a train", [3])]
    [0.54]
    >>> [round(float(r), 3) for r in model.adjust([0.6], "a train from Boston to Albany at 9", [3])]
    [0.648]
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    relevance_weight: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        size = len(EVIDENCE_MEASURES)
        if not (len(self.mean) == len(self.scale) == len(self.weights) == size):
            raise ValueError(
                f"an evidence model has {size} means, scales and weights (one per measure: "
                f"{', '.join(EVIDENCE_MEASURES)}); got {len(self.mean)}, {len(self.scale)} and "
                f"{len(self.weights)}"
            )
        numbers = (*self.mean, *self.scale, *self.weights, self.relevance_weight, self.offset)
        if not all(math.isfinite(x) for x in numbers) or min(self.scale) <= 0:
            raise ValueError(f"an evidence model needs finite numbers and scales > 0: {self!r}")
        if self.relevance_weight < 0:
            raise ValueError(f"relevance_weight must be >= 0, got {self.relevance_weight!r}")

    def adjust(
        self,
        relevance: Sequence[float] | FloatArray,
        request: str,
        required: Sequence[int] | FloatArray,
    ) -> FloatArray:
        """Each tool's corrected relevance for ``request``: ``relevance[..., j]`` uncorrected
        (one row per text scored, or one vector), the tool with ``required[j]`` required
        parameters."""
        words, values = request_measures(request)
        return self.adjusted(
            np.asarray(relevance, dtype=np.float64),
            words,
            values,
            np.asarray(required, dtype=np.float64),
        )

    def adjusted(
        self, relevance: FloatArray, words: int, values: int, required: FloatArray
    ) -> FloatArray:
        """:meth:`adjust` from the request's :func:`request_measures`."""
        standard = (evidence_measures(words, values, required) - np.array(self.mean)) / np.array(
            self.scale
        )
        shift = standard @ np.array(self.weights) + self.offset
        return np.asarray(self.relevance_weight * relevance + shift, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "measures": list(EVIDENCE_MEASURES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "relevance_weight": self.relevance_weight,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> EvidenceModel:
        """The model :meth:`to_json` wrote; a :class:`ValueError` naming ``where`` otherwise."""
        if not isinstance(data, Mapping) or data.get("measures") != list(EVIDENCE_MEASURES):
            raise ValueError(
                f"{where}: 'evidence' is not an evidence model over the measures "
                f"{list(EVIDENCE_MEASURES)}; fit the encoder again"
            )
        try:
            return cls(
                tuple(float(x) for x in data["mean"]),
                tuple(float(x) for x in data["scale"]),
                tuple(float(x) for x in data["weights"]),
                float(data["relevance_weight"]),
                float(data["offset"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: 'evidence' is malformed ({exc}); fit the encoder again"
            ) from None


def fit_evidence_model(
    relevance: Sequence[float],
    measures: Sequence[Sequence[float]] | FloatArray,
    applies: Sequence[bool],
    *,
    l2: float = 1.0,
) -> EvidenceModel | None:
    """Fit the correction on requests scored by their best tool: ``relevance``, the request's
    :func:`evidence_measures` against that tool (one row each) and ``applies`` (a tool serves
    the request). Two logistic regressions on standardised inputs, L2 penalty ``l2`` on the
    slopes: of ``applies`` on relevance and the measures, and on relevance alone, whose slope
    converts the first one's log-odds to relevance. ``None`` when both kinds are not present or
    relevance alone does not raise the odds that a tool applies."""
    y = np.asarray(applies, dtype=np.float64)
    rel = np.asarray(relevance, dtype=np.float64)
    raw = np.asarray(measures, dtype=np.float64).reshape(-1, len(EVIDENCE_MEASURES))
    if not len(rel) == len(raw) == len(y):
        raise ValueError(f"{len(rel)} relevances, {len(raw)} measure rows and {len(y)} labels")
    if y.min(initial=1.0) == y.max(initial=0.0):
        return None
    inputs = np.column_stack([rel, raw])
    alone = fit_logistic(inputs[:, :1], y, l2=l2)
    per_relevance = alone.coef[0] / alone.scale[0]  # log-odds per unit of relevance, alone
    if per_relevance <= 1e-6:
        return None
    full = fit_logistic(inputs, y, l2=l2)
    mean, scale = full.mean, full.scale
    # (full log-odds - the relevance-only intercept) / per_relevance, in raw relevance:
    relevance_weight = full.coef[0] / scale[0] / per_relevance
    intercept = full.intercept - full.coef[0] * mean[0] / scale[0]
    reference = alone.intercept - alone.coef[0] * mean[0] / scale[0]
    return EvidenceModel(
        mean=tuple(float(v) for v in mean[1:]),
        scale=tuple(float(v) for v in scale[1:]),
        weights=tuple(float(v) for v in full.coef[1:] / per_relevance),
        relevance_weight=max(0.0, float(relevance_weight)),
        offset=float((intercept - reference) / per_relevance),
    )
