"""Generalised least squares for MSD curves whose points are correlated (the approach of kinisi).

MSD values at different lags of one trajectory share the same displacements and are strongly
correlated; ordinary least squares then gives a fine slope but a wrong error. For a random walk the
covariance of the all-origins MSD is known exactly: for lags ``m`` and ``n`` (frames) of a trajectory of
``T`` frames, in one dimension with unit step variance,

    Cov(MSD_m, MSD_n) = 2 / ((T - m)(T - n)) · Σ_d c(d) o(d)²,

summing over the offsets ``d`` between the two windows' origins, with ``o(d)`` the number of shared steps
and ``c(d)`` the number of origin pairs at that offset. Three independent Cartesian components multiply
it by 3, the step variance ``s² = slope · Δt / 3`` (Å²) enters squared, and averaging over ``n_ions``
independent ions and ``n_replicas`` replicas divides it by their product. The correlation structure
does not depend on D, so the GLS slope needs no iteration; only the error scales with the fitted slope.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .errors import AnalysisError

#: Largest number of MSD points used by the GLS fit; neighbouring lags carry almost the same information.
MAX_GLS_POINTS = 64


def random_walk_covariance(lags: np.ndarray, n_frames: int) -> np.ndarray:
    """Covariance of all-origins MSD values at ``lags`` (frames) for a 1D random walk with unit steps."""
    lags = np.asarray(lags, dtype=int)
    size = lags.size
    covariance = np.empty((size, size))
    for i, m in enumerate(lags):
        for j in range(i, size):
            n = lags[j]
            offsets = np.arange(-(n - 1), m)
            overlap = np.minimum(m, offsets + n) - np.maximum(0, offsets)
            count = np.minimum(n_frames - 1 - m, n_frames - 1 - n - offsets) - np.maximum(0, -offsets) + 1
            total = np.sum(np.clip(count, 0, None) * overlap.astype(float) ** 2)
            covariance[i, j] = covariance[j, i] = 2.0 * total / ((n_frames - m) * (n_frames - n))
    return covariance


def gls_line_fit(
    time_ps: np.ndarray,
    msd_A2: np.ndarray,
    indices: np.ndarray,
    *,
    n_ions: int,
    n_replicas: int,
) -> tuple[float, float, float]:
    """GLS fit ``MSD = slope · t + intercept`` on ``indices`` of an all-origins MSD on a uniform time grid.

    :return: ``(slope_A2_per_ps, intercept_A2, slope_standard_error_A2_per_ps)``
    """
    if n_ions < 1 or n_replicas < 1:
        raise AnalysisError(f'GLS needs n_ions >= 1 and n_replicas >= 1, got {n_ions} and {n_replicas}.')
    frame_ps = time_ps[1] - time_ps[0]
    lags = np.rint(time_ps / frame_ps).astype(int)
    if time_ps[0] != 0 or np.any(np.abs(lags * frame_ps - time_ps) > 1e-6 * frame_ps):
        raise AnalysisError('the GLS estimator needs MSD lags on a uniform grid starting at 0 ps.')
    indices = indices[lags[indices] > 0]  # the MSD at lag 0 is exactly 0: no information, zero variance
    if indices.size < 2:
        raise AnalysisError('the GLS fit needs at least 2 MSD points at lags above 0 ps in the fit window.')
    if indices.size > MAX_GLS_POINTS:
        indices = indices[np.unique(np.linspace(0, indices.size - 1, MAX_GLS_POINTS).round().astype(int))]
    kernel = random_walk_covariance(lags[indices], n_frames=time_ps.size)
    design = np.column_stack([np.ones(indices.size), time_ps[indices]])
    scale = np.sqrt(np.diag(kernel))
    correlation = kernel / np.outer(scale, scale) + 1e-10 * np.eye(indices.size)
    factor = linalg.cho_factor(correlation)
    weighted_design = design / scale[:, None]
    normal = weighted_design.T @ linalg.cho_solve(factor, weighted_design)
    rhs = weighted_design.T @ linalg.cho_solve(factor, msd_A2[indices] / scale)
    intercept, slope = np.linalg.solve(normal, rhs)
    step_variance = abs(slope) * frame_ps / 3.0
    variance = 3.0 * step_variance**2 / (n_ions * n_replicas) * np.linalg.inv(normal)[1, 1]
    return float(slope), float(intercept), float(np.sqrt(variance))
