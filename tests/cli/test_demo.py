"""``aiida-mlffdiff demo``: the synthetic end-to-end run recovers its known activation energy."""

from __future__ import annotations

import re

import pytest
from aiida import orm

from aiida_mlffdiff.demo import DemoSettings

from .conftest import PNG_MAGIC


@pytest.mark.slow
def test_demo(cli, tmp_path):
    settings = DemoSettings()
    output_dir = tmp_path / 'demo'
    result = cli('demo', '--synthetic', '--output-dir', output_dir)
    assert result.exit_code == 0, (result.output, result.exception)
    output = result.output

    assert 'T (K)' in output  # the table header
    assert 'D (cm²/s)' in output
    for temperature in settings.temperatures_K:
        assert re.search(rf'^\s*{temperature:.0f}\s+\S+ ± ', output, re.MULTILINE), f'no table row for {temperature}'
    assert 'verdi process list' in output

    match = re.search(r'Arrhenius \(Dict<(\d+)>\): Ea = ([-0-9.eE+]+) ± ([0-9.eE+-]+) eV', output)
    assert match, output
    pk, ea, ea_err = int(match[1]), float(match[2]), float(match[3])
    assert abs(ea - settings.activation_energy_eV) < 0.05
    assert 0 < ea_err < 0.05
    fit = orm.load_node(pk)
    assert fit.creator.process_label == 'fit_arrhenius'
    assert fit['Ea_eV'] == pytest.approx(ea, rel=5e-3)  # printed with 3 significant digits
    assert len(fit.creator.base.links.get_incoming(node_class=orm.Dict).all()) == len(settings.temperatures_K) + 1

    pngs = [output_dir / 'arrhenius.png'] + [output_dir / f'msd_{t:.0f}K.png' for t in settings.temperatures_K]
    for path in pngs:
        assert path.read_bytes().startswith(PNG_MAGIC), path
    assert sorted(p.name for p in output_dir.glob('*.png')) == sorted(p.name for p in pngs)
    trajectories = list((output_dir / 'trajectories').glob('XDATCAR_*.gz'))
    assert len(trajectories) == settings.n_replicas * len(settings.temperatures_K)


def test_printed_tracebacks_go_to_a_file(tmp_path, capsys):
    """Tracebacks printed by a parser during the demo land in a file, counted; print_exc is restored after."""
    import traceback

    from aiida_mlffdiff.cli.demo import printed_tracebacks_to

    original = traceback.print_exc
    path = tmp_path / 'out' / 'parser-tracebacks.log'
    with printed_tracebacks_to(path) as printed:
        try:
            raise KeyError('could not find and parse the line with `estimated scf accuracy`')
        except KeyError:
            traceback.print_exc()
    assert printed == [1]
    assert traceback.print_exc is original
    assert 'estimated scf accuracy' in path.read_text()
    assert 'Traceback' not in capsys.readouterr().err
