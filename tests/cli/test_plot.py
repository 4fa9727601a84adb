"""``aiida-mlffdiff plot PK``: MSD plots of diffusion results, pooled MSDs and MsdData; Arrhenius plots."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_mlffdiff.data.msd import MsdData

from .conftest import PNG_MAGIC, node_count


def plot(cli, pk, path):
    result = cli('plot', pk, '-o', path)
    assert result.exit_code == 0, (result.output, result.exception)
    assert f'wrote {path}' in result.output
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000  # a real figure, not an empty canvas
    return data


@pytest.mark.parametrize('key', ['pk', 'pooled_msd_pk', 'msd_pk'])
def test_msd_plots(cli, stored_series, tmp_path, key):
    result = stored_series[800.0]
    node = orm.load_node(result[key])
    expected_type = {'pk': orm.Dict, 'pooled_msd_pk': orm.ArrayData, 'msd_pk': MsdData}[key]
    assert isinstance(node, expected_type)
    before = node_count()
    plot(cli, result[key], tmp_path / f'{key}.png')
    assert node_count() == before


def test_diffusion_result_and_its_pooled_msd_give_the_same_plot(cli, stored_series, tmp_path):
    result = stored_series[600.0]
    from_dict = plot(cli, result['pk'], tmp_path / 'dict.png')
    from_pooled = plot(cli, result['pooled_msd_pk'], tmp_path / 'pooled.png')
    assert from_dict == from_pooled


def test_arrhenius_plot(cli, stored_arrhenius, stored_series, tmp_path):
    arrhenius = plot(cli, stored_arrhenius['pk'], tmp_path / 'arrhenius.png')
    msd = plot(cli, stored_series[600.0]['pk'], tmp_path / 'msd.png')
    assert arrhenius != msd


def test_default_output_name(cli, stored_series, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pk = stored_series[1000.0]['pk']
    result = cli('plot', pk)
    assert result.exit_code == 0, result.output
    assert (tmp_path / f'plot_{pk}.png').read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize('make', [lambda: orm.Int(7), lambda: orm.Dict({'D_cm2_s': 1e-6})], ids=['Int', 'Dict'])
def test_unrelated_node(cli, tmp_path, make):
    node = make().store()
    path = tmp_path / 'unrelated.png'
    message = cli.fails('plot', node.pk, '-o', path)
    assert str(node.pk) in message
    assert 'compute_diffusion' in message
    assert not path.exists()


def test_missing_node(cli, tmp_path):
    missing = max(orm.QueryBuilder().append(orm.Node, project='id').all(flat=True)) + 1000
    result = cli('plot', missing, '-o', tmp_path / 'missing.png')
    assert result.exit_code == 2
    assert 'no Node found' in result.output or 'not exist' in result.output.lower()
    assert not (tmp_path / 'missing.png').exists()


def test_process_node_plots_its_result(cli, stored_series, tmp_path):
    """The compute_diffusion pk that analyze and demo print is plotted like its diffusion output."""
    calculation_pk = stored_series[600.0]['calculation_pks'][1]
    path = tmp_path / 'process.png'
    result = cli('plot', calculation_pk, '-o', path)
    assert result.exit_code == 0, result.output
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_failed_process_node_is_refused(cli, make_positions, tmp_path):
    from aiida_mlffdiff.functions.diffusion import compute_diffusion

    from .conftest import write_extxyz

    paths = [write_extxyz(tmp_path / f'run_{i}.extxyz', make_positions(i)) for i in range(2)]
    msd = orm.load_node(cli.analyze(paths)['msd_pk'])
    _, call = compute_diffusion.run_get_node(parameters=orm.Dict({'fit_start_ps': 100.0, 'fit_end_ps': 200.0}), msd=msd)
    message = cli.fails('plot', call.pk, '-o', tmp_path / 'failed.png')
    assert 'did not finish ok' in message


def test_msd_data_with_a_failed_diffusion_call(cli, make_positions, tmp_path):
    from aiida_mlffdiff.functions.diffusion import compute_diffusion

    from .conftest import write_extxyz

    paths = [write_extxyz(tmp_path / f'run_{i}.extxyz', make_positions(i)) for i in range(2)]
    msd = orm.load_node(cli.analyze(paths)['msd_pk'])
    window = orm.Dict({'fit_start_ps': 100.0, 'fit_end_ps': 200.0})  # beyond the 14.9 ps of lags
    _, call = compute_diffusion.run_get_node(parameters=window, msd=msd)
    assert call.exit_status == 330
    path = tmp_path / 'msd.png'
    result = cli('plot', msd.pk, '-o', path)
    assert result.exit_code == 0, repr(result.exception)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_dict_that_only_looks_like_an_arrhenius_result(cli, tmp_path):
    node = orm.Dict({'Ea_eV': 0.3}).store()
    message = cli.fails('plot', node.pk, '-o', tmp_path / 'fake.png')
    assert str(node.pk) in message


def test_output_in_a_missing_directory(cli, stored_series, tmp_path):
    message = cli.fails('plot', stored_series[600.0]['pk'], '-o', tmp_path / 'missing' / 'plot.png')
    assert 'missing' in message
