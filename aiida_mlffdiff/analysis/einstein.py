"""Einstein relation fits of MSD(t) = 2 d D t + c, the fit window and its diagnostics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import AnalysisError
from .units import A2_PER_PS_TO_CM2_PER_S
from .validation import as_finite_array

#: Dimensionality of the diffusion (3D: MSD = 6 D t).
DIMENSIONS = 3
#: Fewest MSD points a fit window must contain.
MIN_WINDOW_POINTS = 5
#: The automatic window ends at this fraction of the longest lag: the last lags have few time origins.
DEFAULT_MAX_FRACTION = 0.5
#: The automatic window starts where the local log–log slope of the MSD reaches this value for good.
DEFAULT_MIN_LOGLOG_SLOPE = 0.9
#: ... and stays in the diffusive band for at least this factor in time.
DEFAULT_SETTLE_FACTOR = 2.0


@dataclass(frozen=True)
class EinsteinFit:
    """Result of a straight-line fit of MSD (Å²) against time (ps) on a window."""

    D_cm2_s: float
    slope_A2_per_ps: float
    intercept_A2: float
    fit_start_ps: float
    fit_end_ps: float
    n_points: int
    loglog_slope: float

    def as_dict(self) -> dict:
        """The fit as a plain dict (JSON-serialisable)."""
        return asdict(self)


def check_msd(time_ps, msd_A2) -> tuple[np.ndarray, np.ndarray]:
    """Validate a time axis (ps, increasing, starting at 0 or later) and MSD values (Å²) of equal length."""
    time = as_finite_array(time_ps, 'time_ps', ndim=1)
    msd = as_finite_array(msd_A2, 'msd_A2')
    if msd.shape[-1] != time.shape[0]:
        raise AnalysisError(f'msd_A2 has {msd.shape[-1]} lags but time_ps has {time.shape[0]}.')
    if time.size > 1 and np.any(np.diff(time) <= 0):
        raise AnalysisError('time_ps must be strictly increasing.')
    if time[0] < 0:
        raise AnalysisError(f'time_ps must not be negative, starts at {time[0]} ps.')
    return time, msd


def window_indices(time_ps: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Indices of the lags inside ``[start, end]`` (ps); refuses windows outside the data or too short."""
    start, end = (float(w) for w in window)
    if not start < end:
        raise AnalysisError(f'fit window start ({start} ps) must be before its end ({end} ps).')
    if start < 0 or end > time_ps[-1] * (1 + 1e-9):
        raise AnalysisError(
            f'fit window [{start}, {end}] ps lies outside the trajectory lags [0, {time_ps[-1]:.6g}] ps.'
        )
    indices = np.flatnonzero((time_ps >= start * (1 - 1e-9)) & (time_ps <= end * (1 + 1e-9)))
    if indices.size < MIN_WINDOW_POINTS:
        raise AnalysisError(
            f'fit window [{start}, {end}] ps holds {indices.size} MSD points, at least {MIN_WINDOW_POINTS} are '
            'needed: use a longer trajectory, a wider window or a shorter frame interval.'
        )
    return indices


def loglog_slope(time_ps, msd_A2, window: tuple[float, float]) -> float:
    """Slope of ln MSD against ln t inside the window: 1 is diffusive, < 1 caged/sub-diffusive, 2 ballistic."""
    time, msd = check_msd(time_ps, msd_A2)
    idx = window_indices(time, window)
    idx = idx[(time[idx] > 0) & (msd[idx] > 0)]
    if idx.size < 2:
        return float('nan')
    return float(np.polyfit(np.log(time[idx]), np.log(msd[idx]), 1)[0])


def _line_fit(time: np.ndarray, msd: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(time, msd, 1)
    return float(slope), float(intercept)


def fit_einstein(time_ps, msd_A2, window: tuple[float, float]) -> EinsteinFit:
    """Ordinary least-squares Einstein fit on ``window`` (ps) → D in cm²/s (3D: D = slope / 6)."""
    time, msd = check_msd(time_ps, msd_A2)
    if msd.ndim != 1:
        raise AnalysisError(f'msd_A2 must be one MSD curve, got shape {msd.shape}.')
    idx = window_indices(time, window)
    slope, intercept = _line_fit(time[idx], msd[idx])
    return EinsteinFit(
        D_cm2_s=slope / (2 * DIMENSIONS) * A2_PER_PS_TO_CM2_PER_S,
        slope_A2_per_ps=slope,
        intercept_A2=intercept,
        fit_start_ps=float(time[idx[0]]),
        fit_end_ps=float(time[idx[-1]]),
        n_points=int(idx.size),
        loglog_slope=loglog_slope(time, msd, (time[idx[0]], time[idx[-1]])),
    )


def local_loglog_slope(time_ps, msd_A2) -> np.ndarray:
    """Local exponent d ln MSD / d ln t at every lag, from a centred difference over a factor of 2 in time.

    NaN where it cannot be evaluated (t = 0 or the factor-of-2 neighbourhood leaves the data).
    """
    time, msd = check_msd(time_ps, msd_A2)
    slopes = np.full(time.shape, np.nan)
    positive = (time > 0) & (msd > 0)
    if positive.sum() < 3:
        return slopes
    log_t, log_msd = np.log(time[positive]), np.log(msd[positive])
    lower = np.interp(log_t - np.log(2) / 2, log_t, log_msd, left=np.nan)
    upper = np.interp(log_t + np.log(2) / 2, log_t, log_msd, right=np.nan)
    slopes[positive] = (upper - lower) / np.log(2)
    return slopes


def auto_fit_window(
    time_ps,
    msd_A2,
    *,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    min_loglog_slope: float = DEFAULT_MIN_LOGLOG_SLOPE,
    settle_factor: float = DEFAULT_SETTLE_FACTOR,
) -> tuple[tuple[float, float], bool]:
    """Choose the Einstein fit window (ps) on an MSD curve.

    The window ends at ``max_fraction`` of the longest lag, so that every point averages over many time
    origins. It starts at the earliest lag ``t`` from which the local log–log slope of the MSD stays in
    the diffusive band ``[min_loglog_slope, 2 - min_loglog_slope]`` up to ``settle_factor · t``: that skips
    the ballistic (slope 2) and caged (slope < 1) regimes, including the quick pass through slope 1 on
    the way from one to the other. Only the early lags, where the MSD is precise, decide; the noisy long
    lags cannot push the start late. If the curve never settles, the window is the second half of the
    usable range and the returned flag is ``False``; callers must report it.

    :return: ``((start_ps, end_ps), diffusive)``
    """
    time, msd = check_msd(time_ps, msd_A2)
    if not 0 < max_fraction <= 1:
        raise AnalysisError(f'max_fraction must be in (0, 1], got {max_fraction}.')
    if not 0 < min_loglog_slope < 1 or settle_factor <= 1:
        raise AnalysisError('min_loglog_slope must be in (0, 1) and settle_factor above 1.')
    end_index = int(np.searchsorted(time, max_fraction * time[-1], side='right')) - 1
    if end_index + 1 < 2 * MIN_WINDOW_POINTS:
        raise AnalysisError(
            f'the trajectory has {time.size} MSD lags; an automatic fit window needs at least '
            f'{int(np.ceil(2 * MIN_WINDOW_POINTS / max_fraction))}: use a longer trajectory or a shorter '
            'frame interval.'
        )
    slopes = local_loglog_slope(time, msd)
    defined = np.flatnonzero(np.isfinite(slopes))
    if defined.size:  # the factor-of-2 neighbourhood leaves the data near the end: carry the last value on
        slopes[defined[-1] + 1 :] = slopes[defined[-1]]
    tolerance = 1.0 - min_loglog_slope
    in_band = np.abs(slopes - 1.0) <= tolerance  # NaN (t = 0) is out of band
    start_index = None
    for index in np.flatnonzero(in_band[: end_index + 1]):
        horizon = min(int(np.searchsorted(time, settle_factor * time[index], side='right')), end_index + 1)
        if in_band[index:horizon].all():
            start_index = int(index)
            break
    diffusive = start_index is not None and end_index - start_index + 1 >= MIN_WINDOW_POINTS
    if not diffusive:
        start_index = end_index // 2
    return (float(time[start_index]), float(time[end_index])), bool(diffusive)


def window_sensitivity(time_ps, msd_A2, window: tuple[float, float]) -> dict:
    """How much D moves when only the first or the second half of the window is fitted.

    :return: dict with ``D_first_half_cm2_s``, ``D_second_half_cm2_s`` and ``relative_change``, the
        largest relative deviation of either from D on the whole window.
    """
    time, msd = check_msd(time_ps, msd_A2)
    idx = window_indices(time, window)
    whole = fit_einstein(time, msd, window).D_cm2_s
    middle = time[idx[idx.size // 2]]
    result = {'D_first_half_cm2_s': float('nan'), 'D_second_half_cm2_s': float('nan')}
    for key, sub in (
        ('D_first_half_cm2_s', (time[idx[0]], middle)),
        ('D_second_half_cm2_s', (middle, time[idx[-1]])),
    ):
        if np.count_nonzero((time >= sub[0]) & (time <= sub[1])) >= MIN_WINDOW_POINTS:
            result[key] = fit_einstein(time, msd, sub).D_cm2_s
    halves = np.array([result['D_first_half_cm2_s'], result['D_second_half_cm2_s']])
    deviations = np.abs(halves[np.isfinite(halves)] - whole) / abs(whole) if whole != 0 else np.array([np.inf])
    result['relative_change'] = float(deviations.max()) if deviations.size else float('nan')
    return result
