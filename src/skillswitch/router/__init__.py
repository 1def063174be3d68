"""The skill router: encoders, classifiers, calibration and the :class:`RoutingDecision`."""

from skillswitch.router.calibration import Calibration, choose_threshold
from skillswitch.router.decision import RoutingDecision, RoutingTiming, SkillScore
from skillswitch.router.exemplar import ExemplarClassifier
from skillswitch.router.profiles import ExpertProfiles, fit_profiles
from skillswitch.router.recruitment import Recruit, Recruiter, RecruitmentPolicy
from skillswitch.router.router import Router, SkillClassifier
from skillswitch.router.scoring import Scores
from skillswitch.router.validation import ValidationResults, load_validation

__all__ = [
    "Calibration",
    "ExemplarClassifier",
    "ExpertProfiles",
    "Recruit",
    "Recruiter",
    "RecruitmentPolicy",
    "Router",
    "RoutingDecision",
    "RoutingTiming",
    "Scores",
    "SkillClassifier",
    "SkillScore",
    "ValidationResults",
    "choose_threshold",
    "fit_profiles",
    "load_validation",
]
