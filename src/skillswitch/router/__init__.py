"""The skill router: encoders, classifiers, calibration and the :class:`RoutingDecision`."""

from skillswitch.router.calibration import Calibration, choose_threshold
from skillswitch.router.decision import RoutingDecision, RoutingTiming, SkillScore
from skillswitch.router.exemplar import ExemplarClassifier
from skillswitch.router.router import Router, SkillClassifier
from skillswitch.router.scoring import Scores

__all__ = [
    "Calibration",
    "ExemplarClassifier",
    "Router",
    "RoutingDecision",
    "RoutingTiming",
    "Scores",
    "SkillClassifier",
    "SkillScore",
    "choose_threshold",
]
