"""Errors of D taken from the data of one trajectory: the spread between groups of ions, and a block bootstrap.

Both estimators make no assumption about the shape of the motion (cage rattles, jumps, back jumps and
non-Gaussian displacements are all in the data they resample):

- :func:`weighted_statistics`: the tracer D of a trajectory is the size-weighted mean of the D of disjoint groups
  of its ions (the Einstein fit is linear in the MSD), so its standard error is that of a weighted mean of
  independent values, with a Student-t interval on ``k − 1`` degrees of freedom for ``k`` groups. Each group's
  D uses the whole trajectory, so every correlation in time is inside it; what it assumes is that the groups are
  independent, i.e. that ions of different groups do not move together.
- :func:`block_bootstrap_slopes`: the collective (charge) displacement of a trajectory is a single path, so its
  MSD has no spread to take an error from. Its increments are resampled in blocks longer than their correlation
  time (moving-block bootstrap) and the path rebuilt; the spread of the refitted slopes is the error.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .errors import AnalysisError
from .msd import collective_msd_from_displacement


def weighted_statistics(values, weights, confidence: float, n_bootstrap: int, rng) -> dict:
    """Weighted mean of independent values with its standard error, t-interval and a bootstrap over the values.

    With equal weights (``weights=None``) this is the mean ± ``s/√k`` of replicas; with the sizes of groups of ions
    as weights, the size-weighted mean of the groups' D, which is the D of all their ions.

    :param values: one value per independent unit (e.g. D in cm²/s of each replica, or of each ion group).
    :param weights: the weight of each value (e.g. ions per group), or None for equal weights.
    :return: dict with ``mean``, ``error``, ``interval``, ``bootstrap_error``, ``bootstrap_interval``, ``n_groups``.
    """
    values = np.asarray(values, dtype=float)
    weights = np.ones(values.shape) if weights is None else np.asarray(weights, dtype=float)
    k = values.size
    if k < 2 or weights.shape != values.shape:
        raise AnalysisError(f'an error from the spread needs at least 2 values with one weight each, got {k}.')
    weights = weights / weights.sum()
    mean = float(weights @ values)
    error = float(np.sqrt(k / (k - 1) * np.sum(weights**2 * (values - mean) ** 2)))
    half = stats.t.ppf(0.5 + confidence / 2, k - 1) * error
    picks = rng.integers(0, k, size=(n_bootstrap, k))
    resampled = (weights[picks] * values[picks]).sum(axis=1) / weights[picks].sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    return {
        'mean': mean,
        'error': error,
        'interval': (mean - half, mean + half),
        'bootstrap_error': float(resampled.std(ddof=1)),
        'bootstrap_interval': tuple(float(v) for v in np.percentile(resampled, [tail, 100 - tail])),
        'n_groups': k,
    }


def default_block_frames(n_increments: int, window_start_frames: int) -> int:
    """Block length (frames) for a path of ``n_increments`` steps: beyond the start of the diffusive window
    (where the velocity correlations have died out) and at least ``n^(1/3)``, but no more than a quarter of the
    path, so that a resample mixes at least four blocks."""
    block = max(int(window_start_frames), int(np.ceil(n_increments ** (1 / 3))), 1)
    return max(1, min(block, n_increments // 4))


def block_bootstrap_slopes(
    time_ps: np.ndarray,
    path_A: np.ndarray,
    indices: np.ndarray,
    *,
    block_frames: int,
    n_resamples: int,
    rng,
) -> np.ndarray:
    """Slopes (Å²/ps) of OLS fits on ``indices`` of the all-origins MSD of block-bootstrapped copies of a path.

    :param time_ps: uniform lag grid from 0 (ps), one entry per frame of the path.
    :param path_A: ``(T, 3)`` displacement path (Å), e.g. the collective displacement of one trajectory.
    :param indices: lags of the fit window.
    :param block_frames: length of the resampled blocks of increments (frames).
    """
    path = np.asarray(path_A, dtype=float)
    # Centred: the resampled paths must not inherit the sample's net drift as a systematic velocity, which would
    # add a ballistic m² term to every resample's MSD (their own random drift is still there, as in the data).
    increments = np.diff(path, axis=0)
    increments -= increments.mean(axis=0)
    n = increments.shape[0]
    if not 1 <= block_frames <= n:
        raise AnalysisError(f'block length must be between 1 and {n} frames, got {block_frames}.')
    n_blocks = -(-n // block_frames)
    design = np.column_stack([np.ones(indices.size), time_ps[indices]])
    projector = np.linalg.pinv(design)[1]  # the OLS slope as a linear functional of the MSD on the window
    slopes = np.empty(n_resamples)
    offsets = np.arange(block_frames)
    zero = np.zeros((1, 3))
    for resample in range(n_resamples):
        starts = rng.integers(0, n - block_frames + 1, size=n_blocks)
        picks = (starts[:, None] + offsets).ravel()[:n]
        resampled = np.concatenate([zero, np.cumsum(increments[picks], axis=0)])
        slopes[resample] = collective_msd_from_displacement(resampled)[indices] @ projector
    return slopes
