"""D with an honest error bar from an ensemble of independent replicas (or one trajectory).

Estimators (``estimator``):

``ols``
    D from an ordinary least-squares Einstein fit of the pooled (replica-averaged) MSD. Because the fit
    is linear in the MSD, this equals the mean of the per-replica D values, so the standard error is the
    spread between replicas, ``s / sqrt(N)``, with a Student-t interval on ``N - 1`` degrees of freedom;
    a bootstrap over whole replicas is reported next to it. Needs at least 2 replicas. Makes no
    assumption about the dynamics: correlated hops, non-Gaussian jumps and all are in the spread.
``ion-groups``
    D from the same OLS fit of the pooled MSD, its error from the spread between disjoint groups of ions of
    every replica (:mod:`.resampling`): the single-trajectory estimator (AIMD). Needs the MSD of each group
    (``ion_group_msd_A2``, kept by :func:`~.trajectory.msd_from_positions`). Makes no assumption about the
    shape of the motion; assumes ions of different groups move independently.
``gls``
    Generalised least squares with the exact covariance of the all-origins MSD of an ideal Gaussian random
    walk of independent ions (:mod:`.gls`). On caged, hopping motion it leans on the steeper first lags of the
    window and its error is too narrow (docs/analysis.md): only on request, or as the last resort for one
    trajectory without ion groups, with a warning.
``auto`` (default)
    ``ols`` when there are at least 2 distinct replicas; ``ion-groups`` for a single trajectory with its ion
    groups; otherwise ``gls``, with a warning. The result says which ran and why (``estimator_reason``).

Identical replicas (the same trajectory passed twice) are counted once, with a warning. The collective
diffusion coefficient D_σ carries an error (replica spread, or a block bootstrap of the one trajectory's
collective displacement) or is not reported; the Haven ratio is reported only where D_σ is resolved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .einstein import (
    DEFAULT_MAX_FRACTION,
    DEFAULT_MIN_LOGLOG_SLOPE,
    DIMENSIONS,
    auto_fit_window,
    check_msd,
    loglog_slope,
    window_indices,
    window_sensitivity,
)
from .errors import AnalysisError
from .gls import gls_line_fit
from .resampling import block_bootstrap_slopes, default_block_frames, weighted_statistics
from .units import A2_PER_PS_TO_CM2_PER_S

ESTIMATORS = ('auto', 'ols', 'ion-groups', 'gls')
#: A D whose value changes by more than this fraction between the window halves gets a warning.
SENSITIVITY_WARNING = 0.2


@dataclass
class DiffusionEstimate:
    """D (cm²/s) with its standard error, interval and the diagnostics that make it checkable."""

    D_cm2_s: float
    D_err_cm2_s: float
    D_interval_cm2_s: tuple[float, float]
    confidence: float
    estimator: str
    n_replicas: int
    n_ions: int
    fit_start_ps: float
    fit_end_ps: float
    fit_window_auto: bool
    diffusive: bool
    loglog_slope: float
    intercept_A2: float
    window_sensitivity: dict
    D_replicas_cm2_s: list[float] = field(default_factory=list)
    D_err_bootstrap_cm2_s: float | None = None
    D_interval_bootstrap_cm2_s: tuple[float, float] | None = None
    D_sigma_cm2_s: float | None = None
    D_sigma_err_cm2_s: float | None = None
    haven_ratio: float | None = None
    haven_ratio_err: float | None = None
    estimator_reason: str = ''
    n_ion_groups: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def relative_error(self) -> float:
        """Standard error over D (dimensionless)."""
        return abs(self.D_err_cm2_s / self.D_cm2_s) if self.D_cm2_s else float('inf')

    def as_dict(self) -> dict:
        """The estimate as a plain JSON-serialisable dict (tuples become lists)."""
        data = asdict(self)
        data['relative_error'] = self.relative_error
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}


def _slopes_to_d(slopes_A2_per_ps):
    return np.asarray(slopes_A2_per_ps) / (2 * DIMENSIONS) * A2_PER_PS_TO_CM2_PER_S


def _ols_slopes(time: np.ndarray, curves: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of straight-line fits of each row of ``curves`` on ``indices``."""
    design = np.column_stack([np.ones(indices.size), time[indices]])
    coefficients = np.linalg.lstsq(design, curves[:, indices].T, rcond=None)[0]
    return coefficients[1], coefficients[0]


#: A D_σ whose interval at this many standard errors reaches 0 is not resolved: no Haven ratio is given for it.
RESOLVED_SIGMAS = 2.0


def _distinct_replicas(msd: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Indices of the first of each set of identical replica curves, and a warning per duplicate."""
    keep, warnings = [], []
    for index, row in enumerate(msd):
        twin = next((k for k in keep if np.array_equal(msd[k], row)), None)
        if twin is None:
            keep.append(index)
        else:
            warnings.append(
                f'replica {index} has exactly the MSD of replica {twin} (the same trajectory twice?): it is counted '
                'once, since copies are not independent samples.'
            )
    return np.array(keep, dtype=int), warnings


def _choose_estimator(estimator: str, n_replicas: int, n_ions: int, groups) -> tuple[str, str]:
    """The estimator that runs and why (one sentence for reports)."""
    if estimator == 'ols':
        if n_replicas < 2:
            raise AnalysisError(
                'the ols estimator takes its error from the spread between replicas and needs at least 2 '
                'distinct ones; use ion-groups (or auto) for a single trajectory.'
            )
        return 'ols', f'requested: error from the spread between {n_replicas} replicas'
    if estimator == 'ion-groups':
        if groups is None:
            raise AnalysisError(
                'the ion-groups estimator needs the MSD of groups of ions (ion_group_msd_A2), which this MSD '
                'does not have; recompute it from the trajectory.'
            )
        return 'ion-groups', 'requested: error from the spread between groups of ions'
    if estimator == 'gls':
        return 'gls', 'requested: random-walk covariance of independent Gaussian walkers'
    if n_replicas >= 2:
        return 'ols', f'{n_replicas} independent replicas: error from their spread'
    if groups is not None:
        return 'ion-groups', 'one trajectory: error from the spread between groups of its ions'
    return 'gls', (
        'one trajectory without its ion groups: random-walk GLS, the only estimator left'
        if n_ions > 1
        else 'one trajectory of a single ion: random-walk GLS, the only estimator left'
    )


def estimate_diffusion(
    time_ps,
    msd_A2,
    *,
    n_ions: int,
    window: tuple[float, float] | None = None,
    estimator: str = 'auto',
    collective_msd_A2=None,
    ion_group_msd_A2=None,
    ion_group_sizes=None,
    collective_displacement_A=None,
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    min_loglog_slope: float = DEFAULT_MIN_LOGLOG_SLOPE,
) -> DiffusionEstimate:
    """Estimate the tracer D (cm²/s) and its error from per-replica MSD curves.

    :param time_ps: lag times (ps), uniform grid from 0 for the ``gls`` estimator and the block bootstrap.
    :param msd_A2: per-replica tracer MSD (Å²), shape ``(n_replicas, n_lags)`` (or ``(n_lags,)``).
    :param n_ions: number of mobile ions averaged in each replica's MSD.
    :param window: Einstein fit window ``(start_ps, end_ps)``; chosen automatically when ``None``.
    :param collective_msd_A2: optional per-replica collective MSD per ion (Å²), same shape, for D_σ
        and the Haven ratio.
    :param ion_group_msd_A2: optional tracer MSD (Å²) of disjoint groups of the ions of each replica,
        ``(n_replicas, n_groups, n_lags)`` (or ``(n_groups, n_lags)`` for one replica), for ``ion-groups``.
    :param ion_group_sizes: ions in each group, ``(n_groups,)``; equal sizes if omitted.
    :param collective_displacement_A: optional ``(n_replicas, n_lags, 3)`` (or ``(n_lags, 3)``) collective
        displacement per √ion (Å) of each replica: one trajectory's D_σ error comes from its block bootstrap.
    :param confidence: level of the reported intervals (0.95 → 95 %).
    """
    time, msd = check_msd(time_ps, msd_A2)
    msd = np.atleast_2d(msd)
    if msd.ndim != 2:
        raise AnalysisError(f'msd_A2 must have shape (n_replicas, n_lags), got {msd.shape}.')
    if int(n_ions) < 1:
        raise AnalysisError(f'n_ions must be at least 1, got {n_ions}.')
    if estimator not in ESTIMATORS:
        raise AnalysisError(f'estimator must be one of {", ".join(ESTIMATORS)}, got {estimator!r}.')
    if not 0 < confidence < 1:
        raise AnalysisError(f'confidence must be between 0 and 1, got {confidence}.')
    groups, sizes = _check_groups(time, msd, ion_group_msd_A2, ion_group_sizes)
    collective, paths = _check_collective(time, msd.shape, collective_msd_A2, collective_displacement_A)

    keep, warnings = _distinct_replicas(msd)
    if keep.size < msd.shape[0]:
        msd = msd[keep]
        groups = None if groups is None else groups[keep]
        collective = None if collective is None else collective[keep]
        paths = None if paths is None else paths[keep]
    n_replicas = msd.shape[0]
    estimator, reason = _choose_estimator(estimator, n_replicas, int(n_ions), groups)
    if estimator == 'gls' and reason.startswith('one trajectory'):
        warnings.append(
            'the error of this single trajectory comes from the random-walk GLS, which assumes independent '
            'Gaussian walkers: on caged or hopping motion its D leans on the first lags of the window and its '
            'error is too narrow. Recompute the MSD from the trajectory to get the ion-groups estimator.'
        )

    pooled = msd.mean(axis=0)
    window_auto = window is None
    if window_auto:
        window, diffusive = auto_fit_window(time, pooled, max_fraction=max_fraction, min_loglog_slope=min_loglog_slope)
        if not diffusive:
            warnings.append(
                f'no diffusive regime found (local log-log slope never settles above {min_loglog_slope}); '
                'D is an upper bound at best: run longer or at higher temperature.'
            )
    indices = window_indices(time, window)
    window = (float(time[indices[0]]), float(time[indices[-1]]))
    slope_loglog = loglog_slope(time, pooled, window)
    diffusive = bool(np.isfinite(slope_loglog) and slope_loglog >= min_loglog_slope)
    if not diffusive and not any('no diffusive regime' in w for w in warnings):
        warnings.append(
            f'the log-log slope of the MSD in the fit window is {slope_loglog:.2f}, below {min_loglog_slope}: '
            'the window is not in the diffusive regime.'
        )
    sensitivity = window_sensitivity(time, pooled, window)
    if sensitivity['relative_change'] > SENSITIVITY_WARNING:
        warnings.append(
            f'D changes by {100 * sensitivity["relative_change"]:.0f} % between the halves of the fit window: '
            'the MSD is not a straight line there.'
        )

    rng = np.random.default_rng(seed)
    slopes, intercepts = _ols_slopes(time, msd, indices)
    replica_d = _slopes_to_d(slopes)
    bootstrap_error = bootstrap_interval = None
    n_groups = None
    if n_replicas >= 2:
        spread = weighted_statistics(replica_d, None, confidence, n_bootstrap, rng)
        bootstrap_error, bootstrap_interval = spread['bootstrap_error'], spread['bootstrap_interval']
    if estimator == 'ols':
        d_value, d_error, interval = spread['mean'], spread['error'], spread['interval']
        intercept = float(intercepts.mean())
        if d_error == 0:
            warnings.append('the replicas give exactly the same D: a zero spread is no error bar.')
    elif estimator == 'ion-groups':
        group_d = _slopes_to_d(_ols_slopes(time, groups.reshape(-1, time.size), indices)[0])
        spread = weighted_statistics(group_d, np.tile(sizes, n_replicas), confidence, n_bootstrap, rng)
        d_value, d_error, interval = spread['mean'], spread['error'], spread['interval']
        bootstrap_error, bootstrap_interval = spread['bootstrap_error'], spread['bootstrap_interval']
        n_groups = spread['n_groups']
        intercept = float(intercepts.mean())
        reason = f'{reason} ({n_groups} groups, Student-t on {n_groups - 1} degrees of freedom)'
        if d_error == 0:
            warnings.append('every group of ions gives exactly the same D: a zero spread is no error bar.')
    else:
        slope, intercept, slope_error = gls_line_fit(time, pooled, indices, n_ions=int(n_ions), n_replicas=n_replicas)
        d_value, d_error = float(_slopes_to_d(slope)), float(_slopes_to_d(slope_error))
        half = stats.norm.ppf(0.5 + confidence / 2) * d_error
        interval = (d_value - half, d_value + half)
    if d_value <= 0:
        warnings.append('the fitted D is not positive: the ions do not diffuse on this time scale.')

    estimate = DiffusionEstimate(
        D_cm2_s=d_value,
        D_err_cm2_s=d_error,
        D_interval_cm2_s=tuple(float(v) for v in interval),
        confidence=confidence,
        estimator=estimator,
        n_replicas=n_replicas,
        n_ions=int(n_ions),
        fit_start_ps=window[0],
        fit_end_ps=window[1],
        fit_window_auto=window_auto,
        diffusive=diffusive,
        loglog_slope=slope_loglog,
        intercept_A2=float(intercept),
        window_sensitivity=sensitivity,
        D_replicas_cm2_s=[float(v) for v in replica_d],
        D_err_bootstrap_cm2_s=bootstrap_error,
        D_interval_bootstrap_cm2_s=bootstrap_interval,
        estimator_reason=reason,
        n_ion_groups=n_groups,
        warnings=warnings,
    )
    if collective is not None:
        _add_collective(estimate, time, collective, paths, indices, confidence, n_bootstrap, rng)
    return estimate


def _check_groups(time, msd, ion_group_msd_A2, ion_group_sizes):
    """Ion-group MSDs as ``(n_replicas, n_groups, n_lags)`` and their sizes, or ``(None, None)``."""
    if ion_group_msd_A2 is None:
        return None, None
    _, groups = check_msd(time, ion_group_msd_A2)
    if groups.ndim == 2:
        groups = groups[None]
    if groups.ndim != 3 or groups.shape[0] != msd.shape[0]:
        raise AnalysisError(
            f'ion_group_msd_A2 must have shape ({msd.shape[0]}, n_groups, {time.size}), got {groups.shape}.'
        )
    n_groups = groups.shape[1]
    sizes = np.ones(n_groups) if ion_group_sizes is None else np.asarray(ion_group_sizes, dtype=float)
    if sizes.shape != (n_groups,) or np.any(sizes <= 0):
        raise AnalysisError(f'ion_group_sizes must hold {n_groups} positive numbers, got {ion_group_sizes}.')
    if n_groups < 2:
        return None, None  # one group (one ion): no spread to take an error from
    return groups, sizes


def _check_collective(time, shape, collective_msd_A2, collective_displacement_A):
    """Collective MSDs ``(n_replicas, n_lags)`` and displacement paths ``(n_replicas, n_lags, 3)`` (or None)."""
    if collective_msd_A2 is None:
        return None, None
    _, collective = check_msd(time, collective_msd_A2)
    collective = np.atleast_2d(collective)
    if collective.shape != shape:
        raise AnalysisError(f'collective_msd_A2 must have the shape of msd_A2 {shape}, got {collective.shape}.')
    if collective_displacement_A is None:
        return collective, None
    paths = np.asarray(collective_displacement_A, dtype=float)
    if paths.ndim == 2:
        paths = paths[None]
    if paths.shape != (shape[0], time.size, 3) or not np.isfinite(paths).all():
        raise AnalysisError(
            f'collective_displacement_A must be finite with shape ({shape[0]}, {time.size}, 3), got {paths.shape}.'
        )
    return collective, paths


def _add_collective(estimate, time, collective, paths, indices, confidence, n_bootstrap, rng) -> None:
    """Fill D_σ ± error (from the collective MSD per ion) and, where D_σ is resolved, the Haven ratio D*/D_σ.

    Errors: the spread between replicas; for one trajectory a block bootstrap of its collective displacement.
    A D_σ without an error, or one whose interval reaches zero, gets no Haven ratio, and a warning says why.
    """
    replica_sigma = _slopes_to_d(_ols_slopes(time, collective, indices)[0])
    sigma = float(replica_sigma.mean())
    sigma_error = None
    if collective.shape[0] >= 2:
        sigma_error = weighted_statistics(replica_sigma, None, confidence, n_bootstrap, rng)['error']
    elif paths is not None and _uniform_from_zero(time):
        block = default_block_frames(time.size - 1, int(indices[0]))
        resampled = block_bootstrap_slopes(
            time, paths[0], indices, block_frames=block, n_resamples=min(n_bootstrap, 1000), rng=rng
        )
        sigma_error = float(_slopes_to_d(resampled.std(ddof=1)))
    if sigma_error is None:
        estimate.warnings.append(
            "D_σ not reported: one trajectory's collective MSD is a single path per frame, and without its "
            'displacement path (for a block bootstrap) nothing gives it an error.'
        )
        return
    estimate.D_sigma_cm2_s, estimate.D_sigma_err_cm2_s = sigma, sigma_error
    if sigma - RESOLVED_SIGMAS * sigma_error <= 0:
        estimate.warnings.append(
            f'Haven ratio not reported: D_σ = {sigma:.3g} ± {sigma_error:.2g} cm²/s is not resolved from zero '
            f'(within {RESOLVED_SIGMAS:g} standard errors); the collective motion needs more sampling.'
        )
        return
    estimate.haven_ratio = estimate.D_cm2_s / sigma
    estimate.haven_ratio_err = abs(estimate.haven_ratio) * float(np.hypot(estimate.relative_error, sigma_error / sigma))


def _uniform_from_zero(time: np.ndarray) -> bool:
    step = time[1] - time[0]
    return bool(time[0] == 0 and np.allclose(np.diff(time), step, rtol=1e-6, atol=0))
