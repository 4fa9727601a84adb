"""Universal MLIPs on a Na conductor, end to end: every model whose weights ship in a wheel, against real QE forces of
tetragonal Na3PS4 (per species and per configuration type) and in MD, with D compared to an imported reference run.

One expensive run shared by the assertions: 2 QE single points (16 atoms) and, for each of the 8 packaged models, one
evaluation and one MD of 60 steps (enough to show that the model runs MD on a Na cell, not to measure D: the D values
of this table are not physics), all at once. The reference is a trajectory the suite makes (Na moving by a Brownian
process with a known D on the Na3PS4 sites) written as a VASP XDATCAR and imported as an AIMD run with its metadata.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_mlffdiff.analysis.synthetic import brownian_trajectory
from aiida_mlffdiff.calculations.evaluate import PRETRAINED_MODELS, pretrained_model
from aiida_mlffdiff.cli import cmd_root
from aiida_mlffdiff.cli.analyze import analyze_files
from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.functions.benchmark import benchmark_table, d_ratio
from aiida_mlffdiff.structures.sodium import na3ps4, na3ps4_structure
from aiida_mlffdiff.workchains.benchmark import BenchmarkWorkChain, model_label
from aiida_mlffdiff.workchains.reference import ReferenceDataWorkChain

from ..dft import qe_support

pseudo_family = qe_support.pseudo_family
qe_code = qe_support.qe_code

#: The true D (cm²/s) of the reference trajectory and its temperature (K).
D_REFERENCE_CM2_S, T_K = 2.0e-5, 900.0


def test_model_labels_and_the_ratio_arithmetic():
    assert model_label('chgnet-0.3.0') == 'chgnet_0_3_0'
    assert model_label('7net-mf-0-pbe') == 'sevennet_mf_0_pbe'
    assert model_label('7net-0_22may2024') == 'sevennet_0_22may2024'
    assert model_label('0abc') == 'model_0abc'
    model = {'D_cm2_s': 4e-5, 'D_err_cm2_s': 4e-6}
    reference = {'D_cm2_s': 2e-5, 'D_err_cm2_s': 3e-6}
    ratio = d_ratio(model, reference)
    assert ratio['ratio'] == pytest.approx(2.0)
    assert ratio['ln_ratio_err'] == pytest.approx(math.hypot(0.1, 0.15))
    assert ratio['agrees_2sigma'] is False  # ln 2 = 0.69 > 2 × 0.18
    assert d_ratio({'D_cm2_s': 4e-5, 'D_err_cm2_s': 5e-5}, reference)['unresolved'].startswith('model D unresolved')
    assert d_ratio(model, {'D_cm2_s': -1e-6, 'D_err_cm2_s': 1e-6})['unresolved'].startswith('reference D unresolved')
    table = benchmark_table(
        {'a': {'force_rmse_meV_A': 50.0, 'force_mae_meV_A': 40.0}},
        {'a': {'temperatures': {'T_900K': {'temperature_K': 900.0, **model, 'unresolved': None}}}},
        {'T_900K': {'temperature_K': 900.0, **reference}},
    )
    cell = table['rows'][0]['temperatures']['T_900K']
    assert cell['ratio'] == pytest.approx(2.0)
    assert cell['D_ref_cm2_s'] == 2e-5
    assert table['force_vs_d_correlation']['T_900K']['unresolved'] == '1 model(s): a rank correlation needs at least 4'


def test_benchmark_plot(tmp_path):
    """Force MAE per species and D/D_ref per model; an unresolved ratio is written, not drawn."""
    from aiida_mlffdiff.plotting import plot_benchmark

    reference = {'T_900K': {'temperature_K': 900.0, 'D_cm2_s': 2e-5, 'D_err_cm2_s': 3e-6}}
    entries = {
        'a': {'temperature_K': 900.0, 'D_cm2_s': 4e-5, 'D_err_cm2_s': 4e-6, 'unresolved': None},
        'b': {'temperature_K': 900.0, 'D_cm2_s': -1e-6, 'D_err_cm2_s': 1e-6, 'unresolved': 'D ≤ 0'},
    }
    table = benchmark_table(
        {label: {'force_mae_per_species_meV_A': {'Na': 20.0, 'S': 90.0}} for label in entries},
        {label: {'temperatures': {'T_900K': entry}} for label, entry in entries.items()},
        reference,
    )
    assert table['rows'][1]['temperatures']['T_900K']['ratio'] is None
    path = plot_benchmark(table, tmp_path / 'benchmark.png')
    assert path.stat().st_size > 10_000


def _configurations() -> dict[str, orm.StructureData]:
    """Na3PS4 near equilibrium (0.02 Å rattle) and as a hot MD snapshot would be (0.12 Å), labelled by type."""
    structures = {}
    for name, amplitude, seed in (('near-equilibrium', 0.02, 1), ('md-hot', 0.12, 2)):
        atoms = na3ps4()
        atoms.positions += np.random.default_rng(seed).normal(0.0, amplitude, atoms.positions.shape)
        structure = orm.StructureData(ase=atoms)
        structure.label = name  # becomes the configuration's config_type
        structures[name.replace('-', '_')] = structure
    return structures


def _reference_trajectory(path) -> None:
    """Na diffusing (known D) around the Na3PS4 sites, the framework vibrating: 400 frames of 10 fs, XDATCAR."""
    from ase.io import write

    atoms = na3ps4()
    symbols = atoms.get_chemical_symbols()
    moves = brownian_trajectory(
        atoms.cell[:], symbols, {'Na': D_REFERENCE_CM2_S}, n_frames=400, frame_interval_ps=0.01, seed=3,
        framework_amplitude_A=0.05, wrap=False,
    )  # fmt: skip
    frames = []
    for positions in moves - moves[0] + atoms.positions:
        frame = atoms.copy()
        frame.positions = positions
        frame.wrap()
        frames.append(frame)
    write(path, frames, format='vasp-xdatcar')


@pytest.fixture
def benchmark_run(qe_code, pseudo_family, engine_code, tmp_path):
    """QE labels of Na3PS4, an imported reference run, and the benchmark of every packaged model (+ one forged)."""
    reference_builder = ReferenceDataWorkChain.get_builder_from_protocol(
        qe_code, _configurations(), 'pbe', protocol='fast', pseudo_family=pseudo_family, max_concurrent=2
    )
    labels, node = run_get_node(reference_builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    training_set = labels['training_set']

    xdatcar = tmp_path / 'XDATCAR'
    _reference_trajectory(xdatcar)
    reference = analyze_files(
        [xdatcar], 'vasp-xdatcar', species='Na', frame_interval_fs=10.0,
        reference={'code': 'VASP', 'functional': 'PBE', 'temperature_K': T_K, 'timestep_fs': 2.0,
                   'source': 'made by the test suite (Brownian Na, known D)'},
    )  # fmt: skip

    python = engine_code('pretrained')
    models = {model_label(name): pretrained_model(name) for name in PRETRAINED_MODELS}
    # a node that records weights this environment does not have: the driver refuses it before loading anything
    forged = PRETRAINED_MODELS['7net-0']
    models['forged'] = MlffModel.pretrained_model(
        'forged-7net-0', architecture='sevenn', species=list(forged['species']), cutoff_A=5.0,
        engine_version=forged['engine_version'], package_model='7net-0', package_file=forged['package_file'],
        weights_sha256='0' * 64,
    ).store()  # fmt: skip
    builder = BenchmarkWorkChain.get_builder_from_protocol(
        models, dict.fromkeys(models, python), reference_set=training_set, structure=na3ps4_structure(),
        temperatures=[T_K], protocol='fast',
        overrides={
            'replicas_per_batch': 1, 'max_replicas': 1, 'target_relative_error': 0.5,
            'md': {'timestep_fs': 2.0, 'equilibration_ps': 0.02, 'production_ps': 0.1, 'sampling_interval_fs': 4.0,
                   'mobile_species': 'Na'},
        },
        reference_diffusion={T_K: orm.load_node(reference['pk'])},
    )  # fmt: skip
    results, node = run_get_node(builder)
    return results, node, reference, training_set, models


@pytest.mark.engines
def test_universal_models_on_na3ps4_against_dft_and_a_reference(benchmark_run, tmp_path):
    results, node, reference, training_set, models = benchmark_run
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert node.exit_status == BenchmarkWorkChain.exit_codes.ERROR_SOME_MODELS_FAILED.status, report
    assert 'forged' in node.exit_message
    assert 'another release of the package' in report  # the driver's sha256 check, before anything loads
    packaged = {model_label(name) for name in PRETRAINED_MODELS}
    assert set(results['metrics']) == packaged
    assert set(results['diffusion']) == packaged

    # The DFT labels: real QE, two configuration types, no Li anywhere.
    assert training_set.species == ['Na', 'P', 'S']
    assert training_set.n_structures == 2

    # Forces per species and per configuration type, for every model; provenance of the weights checked by the driver.
    for label in packaged:
        metrics = results['metrics'][label].get_dict()
        assert set(metrics['force_mae_per_species_meV_A']) == {'Na', 'P', 'S'}
        assert set(metrics['per_config_type']) == {'near-equilibrium', 'md-hot'}
        for entry in metrics['per_config_type'].values():
            assert entry['n_structures'] == 1
            assert 0 < entry['force_mae_meV_A'] < 5000
        evaluation = results['metrics'][label].creator
        assert evaluation.outputs.run_info['weights_sha256'] == models[label].sha256
    mf_pbe, mf_r2scan = (results['metrics'][f'sevennet_mf_0_{head}'].get_dict() for head in ('pbe', 'r2scan'))
    assert mf_pbe['force_mae_meV_A'] != mf_r2scan['force_mae_meV_A']  # the two heads are two models

    # The reference: imported with its metadata, recovered by the same estimator as the MD.
    assert abs(reference['D_cm2_s'] - D_REFERENCE_CM2_S) < 3 * reference['D_err_cm2_s']
    trajectory = orm.load_node(reference['trajectory_pks'][0])
    assert trajectory.base.attributes.get('mlffdiff_reference')['code'] == 'VASP'

    # The table: D/D_ref with its uncertainty, or "unresolved" with the reason; never a number for an unresolved D.
    comparison = results['comparison'].get_dict()
    assert {row['label'] for row in comparison['rows']} == packaged
    for row in comparison['rows']:
        cell = row['temperatures']['T_900K']
        assert cell['D_ref_cm2_s'] == reference['D_cm2_s']
        summary = results['diffusion'][row['label']]['temperatures']['T_900K']
        if summary['unresolved']:
            assert cell['ratio'] is None
            assert cell['unresolved'] == f'model D unresolved: {summary["unresolved"]}'
        else:
            assert cell['ratio'] == pytest.approx(summary['D_cm2_s'] / reference['D_cm2_s'])
            assert cell['ln_ratio_err'] > 0
    correlation = comparison['force_vs_d_correlation']['T_900K']
    assert correlation['n_models'] == len(packaged)
    assert correlation['unresolved'] or -1 <= correlation['rho'] <= 1

    runner = CliRunner()
    result = runner.invoke(cmd_root, ['report', str(node.pk)])
    assert result.exit_code == 0, result.output
    assert 'reference T_900K: D = ' in result.output
    assert '[code VASP, functional PBE, timestep_fs 2.0' in result.output
    assert 'per type md-hot' in result.output
    for row in comparison['rows']:
        if row['temperatures']['T_900K']['unresolved']:
            assert 'D/D_ref unresolved (model D unresolved' in result.output
    plotted = runner.invoke(cmd_root, ['plot', str(node.pk), '-o', str(tmp_path / 'benchmark.png')])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / 'benchmark.png').stat().st_size > 10_000
    data = json.loads(runner.invoke(cmd_root, ['report', str(node.pk), '--json']).output)
    assert data['reference']['T_900K']['metadata']['functional'] == 'PBE'
    print('\n' + result.output)


@pytest.mark.parametrize(
    ('change', 'match'),
    [
        ('no_code', 'has no code'),
        ('nothing', 'nothing to benchmark'),
        ('li_model_on_na', 'does not cover Na, P, S'),
        ('reference_at_other_t', 'is at none of the temperatures'),
        ('reference_run_at_other_t', 'is the D of a run at 600 K'),
        ('reference_of_other_species', 'is the D of Li, the MD follows Na'),
    ],
)
def test_benchmark_refused_at_submission(change, match, engine_code):
    from aiida.engine import run

    python = engine_code('pretrained')
    models = {'sevennet_0': pretrained_model('7net-0')}
    builder = BenchmarkWorkChain.get_builder_from_protocol(
        models, {'sevennet_0': python}, structure=na3ps4_structure(), temperatures=[900.0], protocol='fast',
        overrides={'md': {'mobile_species': 'Na'}},
    )  # fmt: skip
    if change == 'no_code':
        builder.codes = {}
    elif change == 'nothing':
        for key in ('structure', 'temperatures', 'diffusion'):
            builder.pop(key, None)
    elif change == 'li_model_on_na':
        builder.models = {'sevennet_0': MlffModel.pretrained_model('li-only', architecture='sevenn', species=['Li'])}
    elif change == 'reference_at_other_t':
        builder.reference_diffusion = {'T_600K': orm.Dict({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1e-6})}
    elif change == 'reference_run_at_other_t':
        builder.reference_diffusion = {'T_900K': orm.Dict({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1e-6, 'temperature_K': 600})}
    else:
        builder.reference_diffusion = {
            'T_900K': orm.Dict({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1e-6, 'temperature_K': 900, 'species': 'Li'})
        }
    count = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match=match):
        run(builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == count
