"""``aiida-mlffdiff analyze`` on bad input: a one-line message naming the problem, no traceback, nothing stored."""

from __future__ import annotations

import ase
import ase.io
import numpy as np
import pytest

from tests.conftest import CELL, SYMBOLS

from .conftest import node_count, write_extxyz, write_xdatcar


@pytest.fixture
def good_files(make_positions, tmp_path):
    return [write_extxyz(tmp_path / f'good_{i}.extxyz', make_positions(i)) for i in range(2)]


def refuse(cli, paths, *options, fmt='extxyz') -> str:
    """Run ``analyze`` that must fail; check that no node was stored; return the lower-cased message."""
    before = node_count()
    message = cli.fails('analyze', *paths, '--format', fmt, '--frame-interval-fs', 100, *options, '--json')
    assert node_count() == before, 'a failed analyze stored nodes'
    return message.lower()


def test_nan_positions(cli, make_positions, good_files, tmp_path):
    positions = make_positions(11)
    positions[40, 3, 1] = np.nan
    bad = write_extxyz(tmp_path / 'nan.extxyz', positions)
    assert 'nan' in bad.read_text().lower()
    message = refuse(cli, [*good_files, bad])
    assert 'nan' in message
    assert 'nan.extxyz' in message


def test_species_absent(cli, good_files):
    message = refuse(cli, good_files, '--species', 'Na')
    assert "'na'" in message
    assert 'absent' in message
    assert 'li, p, s' in message  # what is there instead


def test_window_outside_the_trajectory(cli, good_files):
    message = refuse(cli, good_files, '--fit-start-ps', 5, '--fit-end-ps', 100)
    assert 'fit window' in message
    assert 'outside' in message
    assert '14.9' in message  # the longest lag of the 150-frame runs


def test_window_start_after_end(cli, good_files):
    message = refuse(cli, good_files, '--fit-start-ps', 6, '--fit-end-ps', 2)
    assert 'fit window' in message
    assert 'before' in message


@pytest.mark.parametrize('option', ['--fit-start-ps', '--fit-end-ps'])
def test_only_one_window_bound(cli, good_files, option):
    message = refuse(cli, good_files, option, 2.0)
    assert '--fit-start-ps' in message
    assert '--fit-end-ps' in message
    assert 'both' in message


def test_too_few_frames(cli, make_positions, tmp_path):
    paths = [write_extxyz(tmp_path / f'short_{i}.extxyz', make_positions(i, n_frames=3)) for i in range(2)]
    message = refuse(cli, paths)
    assert '3 msd lags' in message
    assert 'longer trajectory' in message


def test_frames_too_far_apart(cli, make_positions, tmp_path):
    positions = make_positions(12)
    fractional = positions @ np.linalg.inv(CELL)
    fractional[60:, 2, 0] += 0.45  # atom 2 jumps by almost half a cell between frames 59 and 60
    positions = (fractional % 1.0) @ CELL
    bad = write_xdatcar(tmp_path / 'XDATCAR_jump', positions)
    message = refuse(cli, [bad], fmt='vasp-xdatcar')
    assert 'too far apart' in message
    assert 'atom 2' in message
    assert 'frames 59 and 60' in message


def test_unreadable_file(cli, good_files, tmp_path):
    garbage = tmp_path / 'garbage.xyz'
    garbage.write_text('this is not a trajectory\n\x01\x02 at all {[(\n')
    message = refuse(cli, [garbage, *good_files[:1]])
    assert 'cannot read' in message
    assert 'garbage.xyz' in message


def test_unreadable_xdatcar(cli, tmp_path):
    garbage = tmp_path / 'XDATCAR'
    garbage.write_text('not\nan\nXDATCAR\n')
    message = refuse(cli, [garbage], fmt='vasp-xdatcar')
    assert 'xdatcar' in message
    assert 'cannot read' in message or 'no frame' in message


def test_replicas_of_different_systems(cli, make_positions, good_files, tmp_path):
    positions = make_positions(13)[:, :-1]  # one S atom fewer
    frames = [ase.Atoms(SYMBOLS[:-1], positions=frame, cell=CELL, pbc=True) for frame in positions]
    other = tmp_path / 'other.extxyz'
    ase.io.write(other, frames, format='extxyz')
    message = refuse(cli, [*good_files, other])
    assert 'other.extxyz' in message
    assert 'different atoms' in message


def test_missing_file_is_a_usage_error(cli, tmp_path):
    before = node_count()
    result = cli('analyze', tmp_path / 'nope.extxyz', '--format', 'extxyz', '--frame-interval-fs', 100)
    assert result.exit_code == 2
    assert 'does not exist' in result.output
    assert node_count() == before


@pytest.mark.parametrize(
    ('options', 'words'),
    [
        (('--frame-interval-fs', 0), ('frame_interval_fs', 'positive')),
        (('--frame-interval-fs', -5), ('frame_interval_fs', 'positive')),
        (('--frame-interval-fs', 100, '--temperature', -300), ('temperature_k', 'positive')),
        (('--frame-interval-fs', 100, '--fit-start-ps', 1, '--fit-end-ps', 1.2), ('3 msd points', 'at least 5')),
        (('--frame-interval-fs', 100, '--fit-start-ps', -1, '--fit-end-ps', 3), ('fit window', 'outside')),
    ],
    ids=['zero-interval', 'negative-interval', 'negative-temperature', 'short-window', 'negative-start'],
)
def test_bad_options(cli, good_files, options, words):
    before = node_count()
    message = cli.fails('analyze', *good_files, '--format', 'extxyz', *options, '--json').lower()
    assert node_count() == before
    for word in words:
        assert word in message


def test_ols_on_a_single_trajectory(cli, good_files):
    message = refuse(cli, good_files[:1], '--estimator', 'ols')
    assert 'ols' in message
    assert 'ion-groups' in message  # the way out


def test_too_few_lammps_types(cli, make_positions, tmp_path):
    from .conftest import write_lammps_dump

    dump = write_lammps_dump(tmp_path / 'run.dump', make_positions(1))
    message = refuse(cli, [dump], '--lammps-types', 'Li,P', fmt='lammps-dump')
    assert 'run.dump' in message
    assert 'more atom types than the 2 symbols' in message


# ---- found by the probe of bad inputs (issue: the production path) ---------------------------------------------


def test_a_file_and_its_gz_copy_are_one_replica(cli, make_positions, tmp_path):
    """A file and its .gz copy (read to the same positions) count once, with a warning: no D ± 0."""
    plain = write_xdatcar(tmp_path / 'XDATCAR_a', make_positions(3))
    (tmp_path / 'copy').mkdir()
    packed = write_xdatcar(tmp_path / 'copy' / 'XDATCAR_a', make_positions(3), gz=True)
    other = write_xdatcar(tmp_path / 'XDATCAR_b', make_positions(4))
    data = cli.analyze([plain, other, packed], fmt='vasp-xdatcar')
    assert data['n_replicas'] == 2
    assert any('the same trajectory twice' in warning for warning in data['warnings'])


def test_nan_in_one_of_several_files_names_the_file(cli, make_positions, good_files, tmp_path):
    positions = make_positions(12)
    positions[7, 2, 0] = np.nan
    bad = write_extxyz(tmp_path / 'broken_run.extxyz', positions)
    message = refuse(cli, [*good_files, bad])
    assert 'broken_run.extxyz' in message
    assert 'frame 7' in message


def test_an_absurd_coordinate_is_refused(cli, make_positions, good_files, tmp_path):
    positions = make_positions(13)
    positions[20, 1, 2] = 1e300
    bad = write_extxyz(tmp_path / 'far.extxyz', positions)
    message = refuse(cli, [*good_files, bad])
    assert 'far.extxyz' in message
    assert 'frame 20' in message
    assert '1e+300' in message


def test_a_truncated_xdatcar_says_so(cli, make_positions, tmp_path):
    path = write_xdatcar(tmp_path / 'XDATCAR', make_positions(5))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(''.join(lines[:-5]))  # the last frame loses its last 5 atoms
    message = refuse(cli, [path], fmt='vasp-xdatcar')
    assert 'truncated' in message
    assert 'xdatcar' in message
    assert 'inhomogeneous' not in message


def test_a_trajectory_without_motion_is_unresolved_not_a_crash(cli, make_positions, tmp_path):
    """No motion gave D = −0.0 and then a TypeError in the CLI; now D is unresolved, said why, exit 0."""
    frozen = np.repeat(make_positions(6)[:1], 150, axis=0)
    path = write_extxyz(tmp_path / 'frozen.extxyz', frozen)
    result = cli('analyze', path, '--format', 'extxyz', '--frame-interval-fs', 100)
    assert result.exit_code == 0, result.output
    assert 'Traceback' not in result.output
    assert 'unresolved' in result.output.lower()


@pytest.mark.parametrize(
    ('options', 'match'),
    [
        (('--functional', 'PBE', '-T', 600), 'needs --reference-code, --functional and --temperature'),
        (('--reference-code', 'VASP', '--functional', 'PBE'), 'needs --reference-code, --functional and --temperature'),
        (('--reference-code', 'VASP', '--functional', 'PBE', '-T', 600, '--timestep-fs', -2), 'time step must be'),
        (('--reference-code', 'VASP', '--functional', ' ', '-T', 600), 'needs its code and functional'),
    ],
)
def test_reference_run_metadata(cli, good_files, options, match):
    assert match.lower() in refuse(cli, good_files, *options)


def test_reference_run_is_stored_with_its_metadata(cli, good_files):
    """An AIMD reference: every trajectory carries what it is; the D is the benchmark's reference_diffusion."""
    from aiida import orm

    from aiida_mlffdiff.benchmark_report import reference_metadata

    result = cli.analyze(
        good_files, '-T', 600, '--reference-code', 'VASP', '--functional', 'PBE', '--timestep-fs', 2, '--source',
        'doi:10.0/test',
    )  # fmt: skip
    for pk in result['trajectory_pks']:
        assert orm.load_node(pk).base.attributes.get('mlffdiff_reference')['functional'] == 'PBE'
    metadata = reference_metadata(orm.load_node(result['pk']))
    assert metadata == {
        'code': 'VASP', 'functional': 'PBE', 'temperature_K': 600.0, 'timestep_fs': 2.0, 'source': 'doi:10.0/test'
    }  # fmt: skip
