"""Does one model property predict another? Spearman's rank correlation with a bootstrap interval.

Used for "does the force RMSE predict the error of D?": x = force RMSE (meV/Å) of each model, y = |ln(D / D_ref)|
of the same models. Ranks make the answer independent of units and of monotone transformations; the interval comes
from resampling the models (pairs) with replacement, so a handful of models gives an honest, wide interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .errors import AnalysisError

#: Fewest pairs for which a rank correlation is reported as resolved.
MIN_PAIRS = 4


@dataclass
class RankCorrelation:
    """Spearman ρ of n pairs, its bootstrap interval at ``confidence`` and what it means (one sentence)."""

    rho: float
    interval: tuple[float, float]
    confidence: float
    n_pairs: int
    n_bootstrap: int
    unresolved: str | None
    interpretation: str

    def as_dict(self) -> dict:
        """A JSON-serialisable dict (the interval as a list)."""
        data = asdict(self)
        data['interval'] = list(self.interval)
        return data


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float('nan')
    return float(stats.spearmanr(x, y).statistic)


def rank_correlation(
    x, y, *, confidence: float = 0.95, n_bootstrap: int = 2000, seed: int = 0, what: tuple[str, str] = ('x', 'y')
) -> RankCorrelation:
    """Spearman's ρ between ``x`` and ``y`` with a percentile bootstrap interval over the pairs.

    ``unresolved`` says why ρ is not a result (fewer than :data:`MIN_PAIRS` pairs, a constant variable); otherwise
    the interval decides the interpretation: entirely above 0 (x predicts y, larger with larger), below 0, or
    containing 0 (no resolved monotone relation).

    :param what: names of x and y for the interpretation.
    """
    x_values = np.asarray(x, dtype=float)
    y_values = np.asarray(y, dtype=float)
    if x_values.shape != y_values.shape or x_values.ndim != 1:
        raise AnalysisError(f'x and y must be 1-D of the same length, got {x_values.shape} and {y_values.shape}.')
    if not (np.all(np.isfinite(x_values)) and np.all(np.isfinite(y_values))):
        raise AnalysisError('x and y must be finite: leave out the models without a value.')
    if not 0 < confidence < 1:
        raise AnalysisError(f'confidence must be between 0 and 1, got {confidence}.')
    n_pairs = x_values.size
    rho = _spearman(x_values, y_values) if n_pairs >= 2 else float('nan')
    nan_interval = (float('nan'), float('nan'))
    if n_pairs < MIN_PAIRS:
        reason = f'{n_pairs} model(s): a rank correlation needs at least {MIN_PAIRS}'
        return RankCorrelation(rho, nan_interval, confidence, n_pairs, 0, reason, f'unresolved: {reason}.')
    if not np.isfinite(rho):
        reason = f'{what[0] if np.ptp(x_values) == 0 else what[1]} is the same for every model'
        return RankCorrelation(rho, nan_interval, confidence, n_pairs, 0, reason, f'unresolved: {reason}.')
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n_pairs, size=(n_bootstrap, n_pairs))
    values = np.array([_spearman(x_values[s], y_values[s]) for s in samples])
    values = values[np.isfinite(values)]
    tail = 100 * (1 - confidence) / 2
    low, high = (float(v) for v in np.percentile(values, [tail, 100 - tail]))
    level = f'{100 * confidence:.0f} %'
    if low > 0:
        meaning = f'{what[0]} predicts {what[1]}: the larger the one, the larger the other (ρ > 0 at {level})'
    elif high < 0:
        meaning = (
            f'{what[0]} predicts {what[1]} inversely: the larger the one, the smaller the other (ρ < 0 at {level})'
        )
    else:
        meaning = (
            f'{what[0]} does not predict {what[1]}: the {level} interval of ρ contains 0 (no resolved monotone '
            f'relation over these {n_pairs} models)'
        )
    return RankCorrelation(rho, (low, high), confidence, n_pairs, int(values.size), None, meaning + '.')
