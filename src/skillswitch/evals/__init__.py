"""The evaluation harness behind ``skillswitch eval``."""

from skillswitch.evals.datasets import LabelledData, check_labels, load_labelled
from skillswitch.evals.intents import IntentReport, evaluate_router, exemplar_router_from_data
from skillswitch.evals.metrics import IntentMetrics, intent_metrics

__all__ = [
    "IntentMetrics",
    "IntentReport",
    "LabelledData",
    "check_labels",
    "evaluate_router",
    "exemplar_router_from_data",
    "intent_metrics",
    "load_labelled",
]
