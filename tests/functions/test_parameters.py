"""validate_parameters: defaults, coercion, and one message naming every problem."""

import pytest

from aiida_mlffdiff.functions.diffusion import DIFFUSION_PARAMETERS
from aiida_mlffdiff.functions.msd import MSD_PARAMETERS
from aiida_mlffdiff.parameters import validate_parameters


def test_defaults_and_int_to_float():
    params = validate_parameters({'frame_interval_fs': 2}, MSD_PARAMETERS)
    assert params['frame_interval_fs'] == 2.0
    assert isinstance(params['frame_interval_fs'], float)
    assert params['species'] == 'Li'
    assert params['mode'] == 'replicas'


def test_every_problem_is_named():
    with pytest.raises(ValueError, match='invalid') as info:
        validate_parameters({'bogus': 1, 'mode': 'sideways', 'drift_correction': 'yes'}, MSD_PARAMETERS)
    message = str(info.value)
    assert 'unknown key(s) bogus' in message
    assert 'frame_interval_fs is required' in message
    assert 'mode must be one of replicas, consecutive' in message
    assert 'drift_correction must be bool' in message


@pytest.mark.parametrize(
    ('raw', 'message'),
    [
        ({'confidence': 1.5}, 'confidence must be between 0 and 1'),
        ({'n_bootstrap': True}, 'n_bootstrap must be int'),
        ({'n_bootstrap': 0}, 'n_bootstrap must be positive'),
        ({'fit_end_ps': -1.0}, 'fit_end_ps must be positive'),
        ({'estimator': 'magic'}, 'estimator must be one of'),
    ],
)
def test_bad_values(raw, message):
    with pytest.raises(ValueError, match=message):
        validate_parameters(raw, DIFFUSION_PARAMETERS)
