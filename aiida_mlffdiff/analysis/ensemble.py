"""D with an honest error bar from an ensemble of independent replicas (or one trajectory).

Estimators (``estimator``):

``ols``
    D from an ordinary least-squares Einstein fit of the pooled (replica-averaged) MSD. Because the fit
    is linear in the MSD, this equals the mean of the per-replica D values, so the standard error is the
    spread between replicas, ``s / sqrt(N)``, with a Student-t interval on ``N - 1`` degrees of freedom;
    a bootstrap over whole replicas is reported next to it. Needs at least 2 replicas. Makes no
    assumption about the dynamics: correlated hops, non-Gaussian jumps and all are in the spread.
``gls``
    Generalised least squares with the exact covariance of the all-origins MSD of a random walk
    (:mod:`.gls`), the approach of kinisi. Works for a single trajectory (AIMD); assumes the ions move
    independently, so correlated motion makes its error bar too small.
``auto`` (default)
    ``ols`` when there are at least 2 replicas, ``gls`` for a single trajectory.
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
from .units import A2_PER_PS_TO_CM2_PER_S

ESTIMATORS = ('auto', 'ols', 'gls')
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
    intercept_A2: float  # noqa: N815
    window_sensitivity: dict
    D_replicas_cm2_s: list[float] = field(default_factory=list)
    D_err_bootstrap_cm2_s: float | None = None
    D_interval_bootstrap_cm2_s: tuple[float, float] | None = None
    D_sigma_cm2_s: float | None = None
    D_sigma_err_cm2_s: float | None = None
    haven_ratio: float | None = None
    haven_ratio_err: float | None = None
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


def _slopes_to_d(slopes_A2_per_ps):  # noqa: N803
    return np.asarray(slopes_A2_per_ps) / (2 * DIMENSIONS) * A2_PER_PS_TO_CM2_PER_S


def _ols_slopes(time: np.ndarray, curves: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of straight-line fits of each row of ``curves`` on ``indices``."""
    design = np.column_stack([np.ones(indices.size), time[indices]])
    coefficients = np.linalg.lstsq(design, curves[:, indices].T, rcond=None)[0]
    return coefficients[1], coefficients[0]


def _replica_statistics(values: np.ndarray, confidence: float, n_bootstrap: int, rng) -> dict:
    """Mean, standard error, t-interval and bootstrap over whole replicas of per-replica values."""
    n = values.size
    mean = float(values.mean())
    error = float(values.std(ddof=1) / np.sqrt(n))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * error
    resampled = values[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return {
        'mean': mean,
        'error': error,
        'interval': (mean - half, mean + half),
        'bootstrap_error': float(resampled.std(ddof=1)),
        'bootstrap_interval': tuple(float(v) for v in np.percentile(resampled, [tail, 100 - tail])),
    }


def estimate_diffusion(
    time_ps,
    msd_A2,  # noqa: N803
    *,
    n_ions: int,
    window: tuple[float, float] | None = None,
    estimator: str = 'auto',
    collective_msd_A2=None,  # noqa: N803
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    min_loglog_slope: float = DEFAULT_MIN_LOGLOG_SLOPE,
) -> DiffusionEstimate:
    """Estimate the tracer D (cm²/s) and its error from per-replica MSD curves.

    :param time_ps: lag times (ps), uniform grid from 0 for the ``gls`` estimator.
    :param msd_A2: per-replica tracer MSD (Å²), shape ``(n_replicas, n_lags)`` (or ``(n_lags,)``).
    :param n_ions: number of mobile ions averaged in each replica's MSD.
    :param window: Einstein fit window ``(start_ps, end_ps)``; chosen automatically when ``None``.
    :param collective_msd_A2: optional per-replica collective MSD per ion (Å²), same shape, for D_σ
        and the Haven ratio.
    :param confidence: level of the reported intervals (0.95 → 95 %).
    """
    time, msd = check_msd(time_ps, msd_A2)
    msd = np.atleast_2d(msd)
    if msd.ndim != 2:
        raise AnalysisError(f'msd_A2 must have shape (n_replicas, n_lags), got {msd.shape}.')
    n_replicas = msd.shape[0]
    if int(n_ions) < 1:
        raise AnalysisError(f'n_ions must be at least 1, got {n_ions}.')
    if estimator not in ESTIMATORS:
        raise AnalysisError(f'estimator must be one of {", ".join(ESTIMATORS)}, got {estimator!r}.')
    if not 0 < confidence < 1:
        raise AnalysisError(f'confidence must be between 0 and 1, got {confidence}.')
    if estimator == 'auto':
        estimator = 'ols' if n_replicas >= 2 else 'gls'
    if estimator == 'ols' and n_replicas < 2:
        raise AnalysisError(
            'the ols estimator takes its error from the spread between replicas and needs at least 2; '
            'use estimator gls for a single trajectory.'
        )

    pooled = msd.mean(axis=0)
    warnings = []
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
    if not diffusive and not warnings:
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
    if n_replicas >= 2:
        spread = _replica_statistics(replica_d, confidence, n_bootstrap, rng)
        bootstrap_error, bootstrap_interval = spread['bootstrap_error'], spread['bootstrap_interval']
    if estimator == 'ols':
        d_value, d_error, interval = spread['mean'], spread['error'], spread['interval']
        intercept = float(intercepts.mean())
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
        warnings=warnings,
    )
    if collective_msd_A2 is not None:
        _add_collective(estimate, time, collective_msd_A2, msd.shape, indices, confidence, n_bootstrap, rng)
    return estimate


def _add_collective(estimate, time, collective_msd_A2, shape, indices, confidence, n_bootstrap, rng) -> None:  # noqa: N803
    """Fill D_σ (from the collective MSD per ion) and the Haven ratio D*/D_σ into ``estimate``."""
    _, collective = check_msd(time, collective_msd_A2)
    collective = np.atleast_2d(collective)
    if collective.shape != shape:
        raise AnalysisError(f'collective_msd_A2 must have the shape of msd_A2 {shape}, got {collective.shape}.')
    replica_sigma = _slopes_to_d(_ols_slopes(time, collective, indices)[0])
    estimate.D_sigma_cm2_s = float(replica_sigma.mean())
    if shape[0] >= 2:
        estimate.D_sigma_err_cm2_s = _replica_statistics(replica_sigma, confidence, n_bootstrap, rng)['error']
    if estimate.D_sigma_cm2_s > 0:
        estimate.haven_ratio = estimate.D_cm2_s / estimate.D_sigma_cm2_s
        if estimate.D_sigma_err_cm2_s is not None:
            estimate.haven_ratio_err = abs(estimate.haven_ratio) * float(
                np.hypot(estimate.relative_error, estimate.D_sigma_err_cm2_s / estimate.D_sigma_cm2_s)
            )
