"""``aiida-mlffdiff arrhenius``: Ea, D0, extrapolated D and σ from a CSV table or from stored diffusion results."""

from __future__ import annotations

import ase
import ase.io
import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_mlffdiff.analysis import nernst_einstein_conductivity
from aiida_mlffdiff.demo import CELL_A
from aiida_mlffdiff.demo import SYMBOLS as DEMO_SYMBOLS

from .conftest import SERIES_EA_EV, SERIES_TEMPERATURES_K, arrhenius_d, node_count

TEMPERATURES_K = (500.0, 600.0, 700.0, 800.0, 900.0)


def write_csv(path, rows, header='T,D,D_error'):
    path.write_text('\n'.join([header, *(','.join(str(v) for v in row) for row in rows)]) + '\n')
    return path


@pytest.fixture
def exact_csv(tmp_path):
    """D(T) exactly on the Arrhenius law (Ea 0.3 eV, D0 1e-3 cm²/s) with 2 % standard errors."""
    rows = [(t, repr(arrhenius_d(t)), repr(0.02 * arrhenius_d(t))) for t in TEMPERATURES_K]
    return write_csv(tmp_path / 'd_of_t.csv', rows)


@pytest.fixture
def poscar(tmp_path):
    """A 52-atom Li24P4S20Cl4 cubic cell (10.16 Å) as a POSCAR."""
    rng = np.random.default_rng(3)
    atoms = ase.Atoms(DEMO_SYMBOLS, scaled_positions=rng.random((52, 3)), cell=np.eye(3) * CELL_A, pbc=True)
    path = tmp_path / 'POSCAR'
    ase.io.write(path, atoms, format='vasp')
    return path


def test_csv_exact_law(cli, exact_csv):
    result = cli.json('arrhenius', '--csv', exact_csv, '--temperature', 300)
    assert result['Ea_eV'] == pytest.approx(0.3, abs=1e-6)
    assert result['D0_cm2_s'] == pytest.approx(1e-3, rel=1e-5)
    assert 0 < result['Ea_err_eV'] < 0.05
    assert result['n_points'] == len(TEMPERATURES_K)
    assert result['temperatures_K'] == list(TEMPERATURES_K)
    assert result['D_at_T_cm2_s'] == pytest.approx(arrhenius_d(300.0), rel=1e-5)
    low, high = result['D_interval_cm2_s']
    assert low < result['D_at_T_cm2_s'] < high
    assert result.get('sigma_at_T_mS_cm') is None  # no structure, no σ
    assert 'pk' not in result  # a CSV fit stores nothing


def test_csv_with_structure_gives_conductivity(cli, exact_csv, poscar):
    before = node_count()
    result = cli.json('arrhenius', '--csv', exact_csv, '--structure', poscar, '--temperature', 300)
    assert node_count() == before
    expected = nernst_einstein_conductivity(result['D_at_T_cm2_s'], n_ions=24, volume_A3=CELL_A**3, temperature_K=300.0)
    assert result['n_ions'] == 24
    assert result['volume_A3'] == pytest.approx(CELL_A**3, rel=1e-9)
    assert result['sigma_at_T_mS_cm'] == pytest.approx(float(expected), rel=1e-9)
    low, high = result['sigma_interval_mS_cm']
    assert low < result['sigma_at_T_mS_cm'] < high
    # the σ interval is the D interval scaled by the same Nernst–Einstein factor
    d_low, d_high = result['D_interval_cm2_s']
    factor = result['sigma_at_T_mS_cm'] / result['D_at_T_cm2_s']
    assert (low, high) == pytest.approx((factor * d_low, factor * d_high), rel=1e-9)


def test_csv_charge_scales_conductivity(cli, exact_csv, poscar):
    single = cli.json('arrhenius', '--csv', exact_csv, '--structure', poscar)
    double = cli.json('arrhenius', '--csv', exact_csv, '--structure', poscar, '--charge', 2)
    assert double['sigma_at_T_mS_cm'] == pytest.approx(4 * single['sigma_at_T_mS_cm'], rel=1e-9)


def test_csv_text_output(cli, exact_csv, poscar):
    result = cli('arrhenius', '--csv', exact_csv, '--structure', poscar)
    assert result.exit_code == 0, result.output
    assert 'Ea = 0.3 ± ' in result.output
    assert 'D(300 K) = ' in result.output
    assert 'σ(300 K) = ' in result.output


def test_csv_without_errors(cli, tmp_path):
    rows = [(t, repr(arrhenius_d(t))) for t in TEMPERATURES_K]
    result = cli.json('arrhenius', '--csv', write_csv(tmp_path / 'plain.csv', rows, header='T,D'))
    assert result['Ea_eV'] == pytest.approx(0.3, abs=1e-6)
    assert result['weighted'] is False


def test_csv_without_d_column(cli, tmp_path):
    path = write_csv(tmp_path / 'no_d.csv', [(t, 1e-6) for t in TEMPERATURES_K], header='T,Diff')
    message = cli.fails('arrhenius', '--csv', path)
    assert 'no_d.csv' in message
    assert 'lacks the column(s) D' in message


def test_csv_with_a_non_number(cli, tmp_path):
    rows = [(500, 1e-6, 1e-8), (600, 'fast', 1e-8), (700, 3e-6, 1e-8)]
    message = cli.fails('arrhenius', '--csv', write_csv(tmp_path / 'text.csv', rows))
    assert 'line 3' in message
    assert 'not a number' in message
    assert 'fast' in message


def test_csv_with_negative_temperature(cli, tmp_path):
    rows = [(t, repr(arrhenius_d(t)), repr(0.02 * arrhenius_d(t))) for t in TEMPERATURES_K]
    rows[1] = (-600.0, *rows[1][1:])
    message = cli.fails('arrhenius', '--csv', write_csv(tmp_path / 'negative.csv', rows))
    assert 'temperature' in message
    assert 'positive' in message
    assert '-600' in message


def test_csv_with_a_byte_order_mark(cli, tmp_path):
    """Excel's UTF-8 CSV starts with a byte-order mark: it is not part of the first column's name."""
    rows = [(t, repr(arrhenius_d(t)), repr(0.02 * arrhenius_d(t))) for t in TEMPERATURES_K]
    path = write_csv(tmp_path / 'excel.csv', rows)
    path.write_bytes(b'\xef\xbb\xbf' + path.read_bytes())
    assert cli.json('arrhenius', '--csv', path)['Ea_eV'] == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize(('error', 'message'), [('', 'D_error is blank at 600 K'), ('0', 'D_error must be positive')])
def test_csv_with_one_blank_or_zero_error(cli, tmp_path, error, message):
    """Before, one blank or zero error silently dropped the whole fit to unweighted (Ea ± 0.018 → ± 0.007 eV)."""
    rows = [(t, repr(arrhenius_d(t)), repr(0.02 * arrhenius_d(t))) for t in TEMPERATURES_K]
    rows[1] = (rows[1][0], rows[1][1], error)
    before = node_count()
    line = cli.fails('arrhenius', '--csv', write_csv(tmp_path / 'mixed.csv', rows))
    assert message in line
    assert node_count() == before


def test_csv_with_one_temperature(cli, tmp_path):
    message = cli.fails('arrhenius', '--csv', write_csv(tmp_path / 'one.csv', [(600, 1e-6, 1e-8)]))
    assert '2 or more' in message


def test_csv_and_pks_are_exclusive(cli, exact_csv):
    assert 'either' in cli.fails('arrhenius')
    assert 'either' in cli.fails('arrhenius', '1', '--csv', exact_csv)


def test_structure_without_the_species(cli, exact_csv, poscar):
    message = cli.fails('arrhenius', '--csv', exact_csv, '--structure', poscar, '--species', 'Na')
    assert "'Na'" in message
    assert 'absent' in message


def test_stored_results(stored_series, stored_arrhenius):
    result = stored_arrhenius
    assert result['n_points'] == 3
    assert sorted(result['temperatures_K']) == list(SERIES_TEMPERATURES_K)
    assert result['Ea_err_eV'] > 0
    assert abs(result['Ea_eV'] - SERIES_EA_EV) < 4 * result['Ea_err_eV']
    assert result['temperature_K'] == 300.0
    # the system is known from the stored MSDs: σ is extrapolated too
    assert result['n_ions'] == 8
    low, high = result['sigma_interval_mS_cm']
    assert low < result['sigma_at_T_mS_cm'] < high

    output = orm.load_node(result['pk'])
    assert isinstance(output, orm.Dict)
    assert output['Ea_eV'] == result['Ea_eV']
    creator = output.creator
    assert creator.process_label == 'fit_arrhenius'
    assert creator.pk == result['calculation_pk']
    assert creator.is_finished_ok
    inputs = creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
    diffusion_inputs = {link.node.pk for link in inputs if link.link_label.startswith('result_')}
    assert diffusion_inputs == {r['pk'] for r in stored_series.values()}
    for link in inputs:
        if link.link_label.startswith('result_'):
            assert link.node.creator.process_label == 'compute_diffusion'


def test_stored_result_that_is_not_a_diffusion_result(cli, stored_series):
    unrelated = orm.Int(5).store()
    plain_dict = orm.Dict({'D': 1.0}).store()
    pks = [r['pk'] for r in stored_series.values()]
    for bad in (unrelated.pk, plain_dict.pk):
        before = node_count()
        message = cli.fails('arrhenius', *pks[:2], bad)
        assert 'diffusion result' in message
        assert node_count() == before


def test_stored_result_that_does_not_exist(cli, stored_series):
    missing = orm.QueryBuilder().append(orm.Node, project='id').all(flat=True)
    message = cli.fails('arrhenius', stored_series[600.0]['pk'], max(missing) + 1000)
    assert 'cannot load' in message


def test_stored_results_without_temperature(cli, make_positions, tmp_path, stored_series):
    from .conftest import write_extxyz

    paths = [write_extxyz(tmp_path / f'noT_{i}.extxyz', make_positions(i)) for i in range(2)]
    without_t = cli.analyze(paths)
    before = node_count()
    message = cli.fails('arrhenius', stored_series[600.0]['pk'], without_t['pk'])
    assert 'temperature' in message
    assert node_count() == before


def test_negative_extrapolation_temperature(cli, exact_csv):
    message = cli.fails('arrhenius', '--csv', exact_csv, '--temperature', -300)
    assert 'temperature_K' in message
    assert 'positive' in message


def test_csv_with_d_falling_with_t_says_unresolved(cli, tmp_path, poscar):
    """Ea ≤ 0: the text names Ea, D(300 K) and σ(300 K) unresolved with the reason and prints none of them."""
    rows = [(t, repr(arrhenius_d(t, ea_ev=-0.21)), repr(0.03 * arrhenius_d(t, ea_ev=-0.21))) for t in TEMPERATURES_K]
    path = write_csv(tmp_path / 'falling.csv', rows)
    result = cli('arrhenius', '--csv', path, '--structure', poscar, '--temperature', 300)
    assert result.exit_code == 0, result.output
    assert 'Ea unresolved: Ea = -0.21 eV ≤ 0: D does not rise with T' in result.output
    assert 'D(300 K) unresolved: D rests on an unresolved Ea' in result.output
    assert 'σ(300 K) unresolved: σ rests on an unresolved Ea' in result.output
    assert 'Success' not in result.output  # no line presents Ea as a result
    assert 'mS/cm' not in result.output
    data = cli.json('arrhenius', '--csv', path, '--temperature', 300)
    assert data['Ea_eV'] == pytest.approx(-0.21, abs=1e-6)  # the raw number stays in the JSON
    assert data['unresolved']['Ea'].startswith('Ea = -0.21 eV')
    assert data['D_unresolved'] == [None] * len(TEMPERATURES_K)


def test_stored_results_with_one_error_missing_warn_that_the_fit_is_unweighted():
    from aiida_mlffdiff.functions.arrhenius import arrhenius_results

    results = [
        {'temperature_K': t, 'D_cm2_s': arrhenius_d(t), 'D_err_cm2_s': 0.02 * arrhenius_d(t)} for t in TEMPERATURES_K
    ]
    results[2]['D_err_cm2_s'] = 0.0
    output = arrhenius_results(results, {})
    assert output['weighted'] is False
    assert any('unweighted fit: D has no (or a zero) error at 700 K' in warning for warning in output['warnings'])
