"""The Prometheus collectors of one app, in a registry of its own (no process globals, so two
apps in one process count apart). Expert and skill figures come from each answer's trace."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from skillswitch.exceptions import ExpertError, ExpertsFailedError, SkillSwitchError
from skillswitch.trace import Answer

__all__ = ["LATENCY_BUCKETS", "Metrics"]

# Seconds: from a routed-but-bypassed call on loopback (ms) to a slow synthesis (minutes).
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)


class Metrics:
    """Requests (endpoint, model, status) and their latency; per skill: answer latency,
    tokens, cost; per expert: attempt latency, failed attempts, retries, tokens, cost; error
    answers by OpenAI error code.

    Label values are bounded: endpoints are the app's routes (else ``other``), models are the
    resolved names (an unknown one counts as ``unknown``), skills and experts come from the
    config.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "skillswitch_requests",
            "HTTP requests answered, by endpoint, model and status.",
            ("endpoint", "model", "status"),
            registry=r,
        )
        self.request_seconds = Histogram(
            "skillswitch_request_duration_seconds",
            "From the request to the last byte of its answer (whole streams included).",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "skillswitch_errors",
            "Error answers (mid-stream errors included), by endpoint, status and error code.",
            ("endpoint", "status", "code"),
            registry=r,
        )
        self.skill_seconds = Histogram(
            "skillswitch_skill_duration_seconds",
            "Time to answer a chat completion, by the skill it went to ('-': an expert named "
            "directly; the out-of-scope label for rejected requests).",
            ("skill",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.expert_seconds = Histogram(
            "skillswitch_expert_duration_seconds",
            "Duration of each successful expert attempt.",
            ("expert",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.expert_errors = Counter(
            "skillswitch_expert_errors",
            "Failed expert attempts: errors, timeouts, open circuits, the deadline.",
            ("expert",),
            registry=r,
        )
        self.retries = Counter(
            "skillswitch_expert_retries",
            "Expert attempts after the first one of a call.",
            ("expert",),
            registry=r,
        )
        self.tokens = Counter(
            "skillswitch_tokens",
            "Tokens of answered chat completions (experts, aggregator and keyword extraction), "
            "by skill and kind (prompt or completion).",
            ("skill", "kind"),
            registry=r,
        )
        self.in_flight = Gauge(
            "skillswitch_requests_in_flight",
            "Requests being answered now, by endpoint (a stream until its last byte).",
            ("endpoint",),
            registry=r,
        )
        self.cost = Counter(
            "skillswitch_cost",
            "Cost of answered chat completions in the configured prices' currency, by skill.",
            ("skill",),
            registry=r,
        )
        self.expert_tokens = Counter(
            "skillswitch_expert_tokens",
            "Tokens of each expert's replies, by expert and kind (prompt or completion).",
            ("expert", "kind"),
            registry=r,
        )
        self.expert_cost = Counter(
            "skillswitch_expert_cost",
            "Cost of each expert's replies in the configured prices' currency.",
            ("expert",),
            registry=r,
        )

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: prometheus_client's lookup (a lock, label
        checks) a dozen times per request was ~4% of a gateway request's CPU. Label values are
        bounded (see the class), and so is this."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_request(
        self,
        endpoint: str,
        model: str,
        status: int,
        seconds: float,
        error_code: str | None = None,
    ) -> None:
        self.child(self.requests, endpoint, model, str(status)).inc()
        self.child(self.request_seconds, endpoint).observe(seconds)
        if status >= 400:
            self.observe_error(endpoint, status, error_code)

    def observe_error(self, endpoint: str, status: int, code: str | None) -> None:
        self.child(self.errors, endpoint, str(status), code or "").inc()

    def observe_answer(self, answer: Answer, skill: str) -> None:
        """Everything the answer's trace says: latency and spending of the skill, and of each
        expert asked (every attempt, failed ones and retries included)."""
        trace = answer.trace
        self.child(self.skill_seconds, skill).observe(trace.total_ms / 1000)
        self.child(self.tokens, skill, "prompt").inc(trace.usage.prompt_tokens)
        self.child(self.tokens, skill, "completion").inc(trace.usage.completion_tokens)
        self.child(self.cost, skill).inc(trace.usage.cost)
        dispatch = trace.dispatch
        if dispatch is None:
            return
        for attempt in dispatch.attempts:
            if attempt.outcome == "ok":
                self.child(self.expert_seconds, attempt.expert).observe(attempt.duration_ms / 1000)
            else:
                self.child(self.expert_errors, attempt.expert).inc()
            if attempt.number > 1:
                self.child(self.retries, attempt.expert).inc()
        for reply in dispatch.replies:
            self.child(self.expert_tokens, reply.expert, "prompt").inc(reply.usage.prompt_tokens)
            self.child(self.expert_tokens, reply.expert, "completion").inc(
                reply.usage.completion_tokens
            )
            self.child(self.expert_cost, reply.expert).inc(reply.usage.cost)

    def observe_failure(self, exc: SkillSwitchError) -> None:
        """A request that got no answer: each failing expert's last error (the trace, and with
        it the earlier attempts, is not available)."""
        failures = exc.exceptions if isinstance(exc, ExpertsFailedError) else (exc,)
        for failure in failures:
            if isinstance(failure, ExpertError):
                self.child(self.expert_errors, failure.expert).inc()

    def exposition(self) -> bytes:
        """The text format that Prometheus scrapes."""
        return generate_latest(self.registry)
