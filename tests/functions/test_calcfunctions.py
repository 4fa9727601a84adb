"""The calcfunctions through AiiDA: results, provenance, and documented exit codes on bad input."""

import numpy as np
import pytest
from aiida import orm

from aiida_mlffdiff.analysis.units import KB_EV_PER_K
from aiida_mlffdiff.data import MsdData
from aiida_mlffdiff.data.trajectories import TrajectoryArrays, trajectory_node
from aiida_mlffdiff.functions import compute_diffusion, fit_arrhenius, msd_from_trajectories
from aiida_mlffdiff.functions.exit_codes import EXIT_CODES
from tests.conftest import CELL, SYMBOLS


def trajectory(positions, cell=CELL, symbols=SYMBOLS) -> orm.TrajectoryData:
    return trajectory_node(TrajectoryArrays(list(symbols), positions, np.asarray(cell))).store()


def status(name: str) -> int:
    return EXIT_CODES[name][0]


@pytest.fixture
def msd_at(make_positions):
    """``msd_at(temperature, d_cm2_s, n_replicas)``: an MsdData made through msd_from_trajectories."""

    def factory(temperature: float, d_cm2_s: float, n_replicas: int = 4, seed: int = 0):
        parts = {f'part_{i:03d}': trajectory(make_positions(seed + i, d_cm2_s)) for i in range(n_replicas)}
        parameters = orm.Dict({'frame_interval_fs': 100, 'temperature_K': temperature})
        return msd_from_trajectories(parameters=parameters, **parts)

    return factory


def test_chain_recovers_arrhenius_and_links_back(msd_at):
    ea, d0 = 0.3, 1e-2
    diffusion = {}
    for i, temperature in enumerate((700.0, 850.0, 1000.0)):
        msd = msd_at(temperature, d0 * np.exp(-ea / (KB_EV_PER_K * temperature)), n_replicas=6, seed=100 * i)
        assert isinstance(msd, MsdData)
        assert msd.n_replicas == 6
        assert msd.n_ions == 8
        assert msd.volume_A3 == pytest.approx(abs(np.linalg.det(CELL)))
        outputs = compute_diffusion(msd=msd)
        diffusion[f'T{i}'] = outputs['diffusion']
        result = outputs['diffusion'].get_dict()
        truth = d0 * np.exp(-ea / (KB_EV_PER_K * temperature))
        assert abs(result['D_cm2_s'] - truth) < 4 * result['D_err_cm2_s']
        assert result['temperature_K'] == temperature
        assert result['sigma_mS_cm'] > 0
        assert 'msd_sem_A2' in outputs['pooled_msd'].get_arraynames()

    arrhenius = fit_arrhenius(parameters=orm.Dict({'temperature_K': 500.0}), **diffusion).get_dict()
    assert abs(arrhenius['Ea_eV'] - ea) < 4 * arrhenius['Ea_err_eV']
    low, high = arrhenius['sigma_interval_mS_cm']
    assert low < arrhenius['sigma_at_T_mS_cm'] < high

    # Provenance: from the Arrhenius result back to the TrajectoryData the MSD came from.
    ancestors = orm.QueryBuilder().append(orm.Dict, filters={'attributes.Ea_eV': arrhenius['Ea_eV']}, tag='a')
    ancestors.append(orm.TrajectoryData, with_descendants='a')
    assert ancestors.count() == 3 * 6


def test_consecutive_parts_equal_the_whole_run(make_positions):
    positions = make_positions(7, n_frames=200)
    parameters = {'frame_interval_fs': 100, 'mode': 'consecutive'}
    whole = msd_from_trajectories(parameters=orm.Dict(parameters), part_000=trajectory(positions))
    split = msd_from_trajectories(
        parameters=orm.Dict(parameters), part_000=trajectory(positions[:120]), part_001=trajectory(positions[120:])
    )
    np.testing.assert_allclose(split.msd_A2, whole.msd_A2, rtol=1e-12, atol=1e-12)


def test_replicas_of_different_length_are_cut_to_the_shortest(make_positions):
    msd = msd_from_trajectories(
        parameters=orm.Dict({'frame_interval_fs': 100}),
        part_000=trajectory(make_positions(1, n_frames=150)),
        part_001=trajectory(make_positions(2, n_frames=120)),
    )
    assert msd.msd_A2.shape == (2, 120)


def run_failing(function, **inputs):
    _, node = function.run_get_node(**inputs)
    assert not node.is_finished_ok
    assert not node.base.links.get_outgoing().all(), 'a failed calcfunction must not leave outputs'
    return node


@pytest.mark.parametrize(
    ('mutate', 'parameters', 'code', 'words'),
    [
        (
            lambda p: np.where(np.arange(p.size).reshape(p.shape) == 40, np.nan, p),
            {},
            'ERROR_INVALID_TRAJECTORY',
            'NaN',
        ),
        (None, {'species': 'Na'}, 'ERROR_INVALID_TRAJECTORY', "species 'Na' is absent"),
        (None, {'bogus': True}, 'ERROR_INVALID_PARAMETERS', 'unknown key(s) bogus'),
        (None, {'temperature_K': -5}, 'ERROR_INVALID_PARAMETERS', 'temperature_K must be positive'),
        (lambda p: p + (np.arange(len(p)) % 2)[:, None, None] * 4.5, {}, 'ERROR_INVALID_TRAJECTORY', 'too far apart'),
    ],
)
def test_msd_exit_codes(make_positions, mutate, parameters, code, words):
    positions = make_positions(3)
    if mutate is not None:
        positions = mutate(positions)
    node = run_failing(
        msd_from_trajectories,
        parameters=orm.Dict({'frame_interval_fs': 100, **parameters}),
        part_000=trajectory(positions),
    )
    assert node.exit_status == status(code)
    assert words in node.exit_message


def test_changing_cell_is_refused(make_positions):
    positions = make_positions(4)
    node = orm.TrajectoryData()
    cells = np.repeat(CELL[None], len(positions), axis=0)
    cells[10:] *= 1.01
    node.set_trajectory(SYMBOLS, positions, cells=cells, pbc=(True, True, True))
    failed = run_failing(msd_from_trajectories, parameters=orm.Dict({'frame_interval_fs': 100}), part_000=node.store())
    assert failed.exit_status == status('ERROR_INVALID_TRAJECTORY')
    assert 'changing cell' in failed.exit_message


def test_diffusion_exit_codes(msd_at):
    msd = msd_at(600.0, 2e-5)
    outside = run_failing(compute_diffusion, parameters=orm.Dict({'fit_start_ps': 1.0, 'fit_end_ps': 500.0}), msd=msd)
    assert outside.exit_status == status('ERROR_ANALYSIS_FAILED')
    assert 'outside the trajectory' in outside.exit_message

    half = run_failing(compute_diffusion, parameters=orm.Dict({'fit_start_ps': 1.0}), msd=msd)
    assert half.exit_status == status('ERROR_INVALID_PARAMETERS')

    other = msd_at(700.0, 2e-5, seed=50)
    mixed = run_failing(compute_diffusion, a=msd, b=other)
    assert mixed.exit_status == status('ERROR_INCOMPATIBLE_INPUTS')
    assert 'temperature_K' in mixed.exit_message

    empty = run_failing(compute_diffusion)
    assert empty.exit_status == status('ERROR_MISSING_INPUT')


def test_pooling_two_batches_equals_one_batch_of_all_replicas(msd_at):
    first, second = msd_at(600.0, 2e-5, n_replicas=3, seed=0), msd_at(600.0, 2e-5, n_replicas=3, seed=3)
    pooled = compute_diffusion(a=first, b=second)['diffusion'].get_dict()
    together = msd_at(600.0, 2e-5, n_replicas=6, seed=0)
    single = compute_diffusion(msd=together)['diffusion'].get_dict()
    assert pooled['n_replicas'] == 6
    assert pooled['D_cm2_s'] == pytest.approx(single['D_cm2_s'], rel=1e-12)
    assert pooled['D_err_cm2_s'] == pytest.approx(single['D_err_cm2_s'], rel=1e-12)


def test_arrhenius_exit_codes(msd_at):
    results = [compute_diffusion(msd=msd_at(t, 2e-5, seed=int(t)))['diffusion'] for t in (600.0, 700.0)]
    one = run_failing(fit_arrhenius, a=results[0])
    assert one.exit_status == status('ERROR_MISSING_INPUT')
    bad = run_failing(fit_arrhenius, parameters=orm.Dict({'temperature_K': 0.0}), a=results[0], b=results[1])
    assert bad.exit_status == status('ERROR_INVALID_PARAMETERS')
    no_t = orm.Dict({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1e-6, 'temperature_K': None}).store()
    missing = run_failing(fit_arrhenius, a=results[0], b=no_t)
    assert missing.exit_status == status('ERROR_MISSING_INPUT')
    assert 'temperature_K' in missing.exit_message
    negative = orm.Dict({'D_cm2_s': -1e-5, 'D_err_cm2_s': 1e-6, 'temperature_K': 800.0}).store()
    failed = run_failing(fit_arrhenius, a=results[0], b=negative)
    assert failed.exit_status == status('ERROR_ANALYSIS_FAILED')
