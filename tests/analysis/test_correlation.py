"""Spearman's rank correlation with a bootstrap interval: does force RMSE predict the error of D?"""

import numpy as np
import pytest
from scipy import stats

from aiida_mlffdiff.analysis import AnalysisError
from aiida_mlffdiff.analysis.correlation import MIN_PAIRS, rank_correlation

WHAT = ('force RMSE', '|ln D/D_ref|')


def test_monotone_data_is_a_resolved_positive_correlation():
    x = np.array([40.0, 55.0, 70.0, 90.0, 120.0, 160.0, 210.0, 260.0])
    result = rank_correlation(x, np.log(x) ** 2, what=WHAT)
    assert result.rho == pytest.approx(1.0)
    assert result.unresolved is None
    assert result.interval[0] > 0
    assert result.interpretation.startswith('force RMSE predicts |ln D/D_ref|: the larger the one, the larger')
    inverse = rank_correlation(x, -x, what=WHAT)
    assert inverse.interval[1] < 0
    assert 'inversely' in inverse.interpretation


def test_unrelated_data_contains_zero_and_says_so():
    rng = np.random.default_rng(3)
    x, y = rng.random(10), rng.random(10)
    result = rank_correlation(x, y, what=WHAT, seed=1)
    assert result.rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert result.interval[0] < 0 < result.interval[1]
    assert result.interpretation.startswith('force RMSE does not predict |ln D/D_ref|')
    assert result.as_dict()['interval'] == list(result.interval)


def test_too_few_models_or_a_constant_variable_is_unresolved():
    few = rank_correlation([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], what=WHAT)
    assert few.unresolved == f'3 model(s): a rank correlation needs at least {MIN_PAIRS}'
    assert few.interpretation.startswith('unresolved')
    constant = rank_correlation([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0], what=WHAT)
    assert constant.unresolved == '|ln D/D_ref| is the same for every model'
    with pytest.raises(AnalysisError, match='finite'):
        rank_correlation([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(AnalysisError, match='same length'):
        rank_correlation([1.0, 2.0], [1.0])
