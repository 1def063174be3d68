"""L2-penalised logistic regression on standardised inputs, fitted by Newton's method: the one
fit behind the learned answer combiner (:mod:`skillswitch.router.combiner`) and the tools'
argument-evidence correction (:mod:`skillswitch.tools.evidence`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LogisticFit", "fit_logistic"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LogisticFit:
    """log-odds = ``coef @ ((x - mean) / scale) + intercept``."""

    coef: FloatArray
    intercept: float
    mean: FloatArray
    scale: FloatArray


def fit_logistic(
    inputs: FloatArray, targets: FloatArray, *, l2: float = 1.0, iterations: int = 50
) -> LogisticFit:
    """Fit ``targets`` (0 or 1) on the columns of ``inputs``, each standardised (a constant
    column keeps scale 1); the penalty ``l2`` shrinks the slopes, not the intercept."""
    mean = inputs.mean(axis=0)
    scale = inputs.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(inputs - mean) / scale, np.ones((len(inputs), 1))])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30.0, 30.0)))
        gradient = z.T @ (p - targets) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return LogisticFit(w[:-1], float(w[-1]), mean, scale)
