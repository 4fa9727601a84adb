"""``aiida-mlffdiff analyze``: trajectory files of every supported format → D ± error with AiiDA provenance."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm

from aiida_mlffdiff.analysis import nernst_einstein_conductivity
from tests.conftest import CELL

from .conftest import LAMMPS_TYPES, node_count, write_extxyz, write_lammps_dump, write_xdatcar

TRUE_D = 2.0e-5  # cm²/s, the default of make_positions
N_REPLICAS = 4
REQUIRED_KEYS = ('D_cm2_s', 'D_err_cm2_s', 'fit_start_ps', 'fit_end_ps', 'n_frames', 'n_replicas', 'pk')


@pytest.fixture
def replicas(make_positions):
    """Wrapped positions of ``N_REPLICAS`` independent replicas (150 frames, 0.1 ps apart, D = TRUE_D)."""
    return [make_positions(seed) for seed in range(N_REPLICAS)]


@pytest.fixture
def xdatcar_files(replicas, tmp_path):
    return [write_xdatcar(tmp_path / f'XDATCAR_{i}', positions) for i, positions in enumerate(replicas)]


@pytest.fixture
def extxyz_files(replicas, tmp_path):
    return [write_extxyz(tmp_path / f'run_{i}.extxyz', positions) for i, positions in enumerate(replicas)]


def test_xdatcar_recovers_true_d(cli, xdatcar_files):
    result = cli.analyze(xdatcar_files, '--species', 'Li', fmt='vasp-xdatcar')
    for key in REQUIRED_KEYS:
        assert result[key] is not None, key
    assert result['n_replicas'] == N_REPLICAS
    assert result['n_frames'] == 150
    assert result['n_ions'] == 8
    assert result['species'] == 'Li'
    assert 0 <= result['fit_start_ps'] < result['fit_end_ps'] <= 14.9 + 1e-9
    assert result['D_err_cm2_s'] > 0
    assert abs(result['D_cm2_s'] - TRUE_D) < 4 * result['D_err_cm2_s']
    assert result['volume_A3'] == pytest.approx(abs(np.linalg.det(CELL)), rel=1e-6)
    assert result['temperature_K'] is None
    assert result.get('sigma_mS_cm') is None


def test_xdatcar_and_extxyz_give_the_same_d(cli, xdatcar_files, extxyz_files):
    from_xdatcar = cli.analyze(xdatcar_files, fmt='vasp-xdatcar')
    from_extxyz = cli.analyze(extxyz_files, fmt='extxyz')
    assert from_extxyz['D_cm2_s'] == pytest.approx(from_xdatcar['D_cm2_s'], rel=1e-6)
    assert from_extxyz['D_err_cm2_s'] == pytest.approx(from_xdatcar['D_err_cm2_s'], rel=1e-5)
    assert (from_extxyz['fit_start_ps'], from_extxyz['fit_end_ps']) == (
        from_xdatcar['fit_start_ps'],
        from_xdatcar['fit_end_ps'],
    )
    assert from_extxyz['pk'] != from_xdatcar['pk']  # two separate analyses were stored


def test_gzipped_xdatcar_gives_the_same_result(cli, replicas, xdatcar_files, tmp_path):
    compressed = [write_xdatcar(tmp_path / f'gz_XDATCAR_{i}', p, gz=True) for i, p in enumerate(replicas)]
    assert all(path.read_bytes()[:2] == b'\x1f\x8b' for path in compressed)
    plain = cli.analyze(xdatcar_files, fmt='vasp-xdatcar')
    gzipped = cli.analyze(compressed, fmt='vasp-xdatcar')
    for key in ('D_cm2_s', 'D_err_cm2_s', 'fit_start_ps', 'fit_end_ps', 'n_frames', 'n_replicas'):
        assert gzipped[key] == plain[key], key
    source = orm.load_node(gzipped['trajectory_pks'][0])
    assert source.base.attributes.get('source_file') == compressed[0].name


def test_explicit_fit_window_is_honoured(cli, extxyz_files):
    automatic = cli.analyze(extxyz_files)
    explicit = cli.analyze(extxyz_files, '--fit-start-ps', 1.0, '--fit-end-ps', 8.0)
    assert explicit['fit_start_ps'] == pytest.approx(1.0)
    assert explicit['fit_end_ps'] == pytest.approx(8.0)
    assert explicit['fit_window_auto'] is False
    assert automatic['fit_window_auto'] is True
    assert (automatic['fit_start_ps'], automatic['fit_end_ps']) != pytest.approx((1.0, 8.0))
    assert explicit['D_cm2_s'] != automatic['D_cm2_s']


def test_consecutive_parts_equal_the_unsplit_run(cli, make_positions, tmp_path):
    positions = make_positions(7)
    whole = write_extxyz(tmp_path / 'whole.extxyz', positions)
    parts = [
        write_extxyz(tmp_path / 'part_1.extxyz', positions[:75]),
        write_extxyz(tmp_path / 'part_2.extxyz', positions[75:]),
    ]
    window = ('--fit-start-ps', 1.0, '--fit-end-ps', 7.0)
    single = cli.analyze([whole], *window)
    joined = cli.analyze(parts, '--consecutive', *window)
    assert joined['n_replicas'] == 1
    assert joined['n_frames'] == single['n_frames'] == 150
    assert joined['D_cm2_s'] == pytest.approx(single['D_cm2_s'], rel=1e-9)
    assert joined['D_err_cm2_s'] == pytest.approx(single['D_err_cm2_s'], rel=1e-9)
    assert (joined['fit_start_ps'], joined['fit_end_ps']) == (single['fit_start_ps'], single['fit_end_ps'])

    # the same two files as independent replicas: two 75-frame replicas
    as_replicas = cli.analyze(parts, '--replicas', '--fit-start-ps', 0.5, '--fit-end-ps', 3.5)
    assert as_replicas['n_replicas'] == 2
    assert as_replicas['n_frames'] == 75


def test_consecutive_order_follows_the_command_line(cli, make_positions, tmp_path):
    """Parts named so that sorting their names would put them out of order are still joined as given."""
    positions = make_positions(8)
    whole = write_extxyz(tmp_path / 'whole.extxyz', positions)
    first = write_extxyz(tmp_path / 'z_first.extxyz', positions[:75])
    second = write_extxyz(tmp_path / 'a_second.extxyz', positions[75:])
    window = ('--fit-start-ps', 1.0, '--fit-end-ps', 7.0)
    single = cli.analyze([whole], *window)
    joined = cli.analyze([first, second], '--consecutive', *window)
    assert joined['D_cm2_s'] == pytest.approx(single['D_cm2_s'], rel=1e-9)


def test_provenance_reaches_the_trajectories(cli, extxyz_files):
    result = cli.analyze(extxyz_files)
    diffusion = orm.load_node(result['pk'])
    assert isinstance(diffusion, orm.Dict)
    assert diffusion['D_cm2_s'] == result['D_cm2_s']
    creator = diffusion.creator
    assert creator.process_label == 'compute_diffusion'
    assert creator.is_finished_ok
    assert creator.pk == result['calculation_pks'][1]
    assert creator.outputs.pooled_msd.pk == result['pooled_msd_pk']

    msd = creator.inputs.msd
    assert msd.pk == result['msd_pk']
    assert msd.creator.process_label == 'msd_from_trajectories'
    assert msd.creator.pk == result['calculation_pks'][0]
    inputs = msd.creator.base.links.get_incoming(node_class=orm.TrajectoryData).all()
    assert sorted(link.node.pk for link in inputs) == sorted(result['trajectory_pks'])
    assert len(result['trajectory_pks']) == N_REPLICAS

    query = orm.QueryBuilder()
    query.append(orm.TrajectoryData, tag='trajectory', project='id')
    query.append(orm.Dict, with_ancestors='trajectory', filters={'id': result['pk']})
    assert sorted(query.all(flat=True)) == sorted(result['trajectory_pks'])

    names = {orm.load_node(pk).base.attributes.get('source_file') for pk in result['trajectory_pks']}
    assert names == {path.name for path in extxyz_files}
    trajectory = orm.load_node(result['trajectory_pks'][0])
    assert trajectory.base.attributes.get('source_format') == 'extxyz'
    assert len(trajectory.base.attributes.get('source_sha256')) == 64
    assert trajectory.numsteps == 150


def test_temperature_gives_conductivity(cli, extxyz_files):
    result = cli.analyze(extxyz_files, '--temperature', 600)
    assert result['temperature_K'] == 600.0
    expected = nernst_einstein_conductivity(
        result['D_cm2_s'], n_ions=8, volume_A3=abs(np.linalg.det(CELL)), temperature_K=600.0
    )
    assert result['sigma_mS_cm'] == pytest.approx(float(expected), rel=1e-9)
    low, high = result['sigma_interval_mS_cm']
    assert low < result['sigma_mS_cm'] < high
    assert orm.load_node(result['msd_pk']).temperature_K == 600.0


def test_lammps_dump_equals_extxyz(cli, replicas, extxyz_files, tmp_path):
    dumps = [write_lammps_dump(tmp_path / f'dump_{i}.lammpstrj', p) for i, p in enumerate(replicas)]
    from_dump = cli.analyze(dumps, '--lammps-types', ','.join(LAMMPS_TYPES), fmt='lammps-dump')
    from_extxyz = cli.analyze(extxyz_files)
    assert from_dump['n_ions'] == 8
    assert from_dump['volume_A3'] == pytest.approx(from_extxyz['volume_A3'], rel=1e-9)
    assert from_dump['D_cm2_s'] == pytest.approx(from_extxyz['D_cm2_s'], rel=1e-6)
    assert (from_dump['fit_start_ps'], from_dump['fit_end_ps']) == (
        from_extxyz['fit_start_ps'],
        from_extxyz['fit_end_ps'],
    )


def test_lammps_dump_without_types_is_refused(cli, replicas, tmp_path):
    dumps = [write_lammps_dump(tmp_path / f'dump_{i}.lammpstrj', p) for i, p in enumerate(replicas)]
    before = node_count()
    message = cli.fails('analyze', *dumps, '--format', 'lammps-dump', '--frame-interval-fs', 100, '--json')
    assert '--lammps-types' in message or 'type' in message
    assert node_count() == before


def test_text_output_and_profile_option(cli, aiida_profile, extxyz_files):
    result = cli('-p', aiida_profile.name, 'analyze', *extxyz_files, '-f', 'extxyz', '--frame-interval-fs', 100)
    assert result.exit_code == 0, result.output
    assert 'D(Li) = ' in result.output
    assert 'cm²/s' in result.output
    assert f'{N_REPLICAS} replica(s) × 150 frames, 8 ions' in result.output
    pk = int(result.output.split('Dict<')[1].split('>')[0])
    assert orm.load_node(pk).creator.process_label == 'compute_diffusion'


def test_one_trajectory_says_which_estimator_ran_and_why(cli, aiida_profile, extxyz_files):
    """One trajectory: the ion-groups estimator, named with its reason; D_σ with an error or withheld."""
    result = cli('-p', aiida_profile.name, 'analyze', extxyz_files[0], '-f', 'extxyz', '--frame-interval-fs', 100)
    assert result.exit_code == 0, result.output
    assert 'estimator ion-groups: one trajectory: error from the spread between groups of its ions' in result.output
    data = cli.analyze(extxyz_files[:1])
    assert data['estimator'] == 'ion-groups'
    assert data['n_ion_groups'] == 8  # one group per Li of the 8
    assert data['D_err_cm2_s'] > 0
    if data['D_sigma_cm2_s'] is not None:
        assert data['D_sigma_err_cm2_s'] > 0
    if data['haven_ratio'] is not None:
        assert data['haven_ratio_err'] > 0


def test_the_same_file_twice_is_one_replica(cli, extxyz_files):
    """Two copies of one trajectory are not two replicas: counted once, warned, no D ± 0."""
    data = cli.analyze([extxyz_files[0], extxyz_files[0]])
    assert data['n_replicas'] == 1
    assert data['D_err_cm2_s'] > 0
    assert any('the same trajectory twice' in warning for warning in data['warnings'])
