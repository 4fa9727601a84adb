"""MlffDiffusionStudyWorkChain: protocol builder, validation at submission, comparison table, real tiny studies."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mlffdiff.cli import cmd_root
from aiida_mlffdiff.functions.comparison import compare_study
from aiida_mlffdiff.structures.argyrodite import li6ps5cl_structure
from aiida_mlffdiff.study_report import format_table, study_rows, table_csv
from aiida_mlffdiff.workchains.study import MlffDiffusionStudyWorkChain, code_keys, default_codes
from tests.dft import qe_support
from tests.dft.qe_support import FAST_OVERRIDES

pseudo_family = qe_support.pseudo_family
qe_code = qe_support.qe_code


@pytest.fixture
def primitive():
    """The shipped 13-atom Li6PS5Cl cell (stored)."""
    return li6ps5cl_structure(cell='primitive').store()


@pytest.fixture
def stand_in_codes(aiida_localhost):
    """Codes for every key of a study that are never run (builder and validation tests)."""

    def code(label, plugin=None):
        return orm.InstalledCode(
            label=label, computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin=plugin
        ).store()

    keys = code_keys(['mace', 'nequip', 'deepmd'], ['chgnet-0.3.0'])
    return {key: code(f'never-run-{key}') for key in keys}, code('never-run-pw', 'quantumespresso.pw')


def builder_for(primitive, codes, family, **changes):
    engine_codes, pw = codes
    arguments = {
        'functionals': ['pbe', 'hse06'],
        'architectures': ['mace', 'nequip', 'deepmd'],
        'temperatures': [600, 800],
        'protocol': 'fast',
        'dft_code': pw,
        'codes': engine_codes,
        'pseudo_family': family,
    }
    arguments.update(changes)
    return MlffDiffusionStudyWorkChain.get_builder_from_protocol(
        primitive, arguments.pop('functionals'), arguments.pop('architectures'), arguments.pop('temperatures'),
        **arguments,
    )  # fmt: skip


def validation_error(builder) -> str | None:
    spec = MlffDiffusionStudyWorkChain.spec().inputs
    problem = spec.validate(spec.pre_process(builder._inputs(prune=True)))
    return None if problem is None else problem.message


def test_builder_from_protocol(primitive, stand_in_codes, pseudo_family):
    """Every stage is resolved on the client into the study's namespaces: values, not protocol names."""
    engine_codes, pw = stand_in_codes
    builder = builder_for(primitive, stand_in_codes, pseudo_family, pretrained=['chgnet-0.3.0'])
    assert validation_error(builder) is None
    inputs = builder._inputs(prune=True)
    assert set(inputs['reference']) == {'pbe', 'hse06'}
    assert set(inputs['training']) == {'mace', 'nequip', 'deepmd'}
    assert set(inputs['diffusion']) == {'mace', 'nequip', 'deepmd', 'chgnet'}
    assert builder.pretrained['chgnet'].model_name == 'chgnet-0.3.0'
    assert builder.sampling['n_configurations'] == 8
    # DFT: the fast protocol with the study's override (25 Ry), per functional; hse06 carries its exact exchange.
    pbe, hse = (builder.reference[f]['dft_settings'].get_dict() for f in ('pbe', 'hse06'))
    assert pbe['ecutwfc'] == hse['ecutwfc'] == 25.0
    assert hse['parameters']['SYSTEM']['input_dft'] == 'hse'
    assert 'input_dft' not in pbe['parameters'].get('SYSTEM', {})
    assert builder.reference['pbe']['code'].pk == pw.pk
    # Training: every hyper-parameter that will run, and the codes.
    mace = builder.training['mace']['train']['train']
    assert mace['parameters']['max_epochs'] == 100  # the study's fast override of the training protocol's 5
    assert mace['code'].pk == engine_codes['mace_train'].pk
    assert builder.training['nequip']['train']['train']['compile_code'].pk == engine_codes['nequip_compile'].pk
    # MD: the parameters with the engine and the mobile species; the code of the model's environment.
    for architecture in ('mace', 'nequip', 'deepmd', 'chgnet'):
        md = builder.diffusion[architecture]['md']['md']
        assert md['parameters']['engine'] == 'ase'  # no torchsim code registered on this computer
        assert md['parameters']['mobile_species'] == 'Li'
    assert builder.diffusion['chgnet']['md']['md']['code'].pk == engine_codes['pretrained_python'].pk
    assert builder.diffusion['mace']['replicas_per_batch'].value == 2

    moderate = builder_for(primitive, stand_in_codes, pseudo_family, protocol='moderate')
    assert moderate.sampling['n_configurations'] > builder.sampling['n_configurations']
    training = {a: moderate.training[a]['train']['train']['parameters'].get_dict() for a in ('mace', 'deepmd')}
    assert training['mace']['max_epochs'] == 200
    assert training['deepmd']['descriptor'] == 'se_atten_v2'
    assert {p['stress_weight'] for p in training.values()} == {0.0}
    assert moderate.reference['pbe']['max_failed_fraction'].value == 0.25
    assert moderate.reference['pbe']['dft_settings']['parameters']['ELECTRONS']['electron_maxstep'] == 60
    assert builder.reference['pbe']['max_failed_fraction'].value == 0.1  # fast: the reference protocol's
    assert moderate.diffusion['mace']['md']['md']['parameters']['coupling'] == 0.01
    # A value changed on the builder is what runs (nothing is looked up again in the daemon).
    moderate.training['mace']['train']['train']['parameters'] = orm.Dict({**training['mace'], 'max_epochs': 7})
    assert validation_error(moderate) is None
    with pytest.raises(ValueError, match='unknown protocol'):
        builder_for(primitive, stand_in_codes, pseudo_family, protocol='quick')
    with pytest.raises(ValueError, match='unknown override'):
        builder_for(primitive, stand_in_codes, pseudo_family, overrides={'epochs': 3})


def test_missing_codes_say_how_to_register_them(own_computer):
    computer = own_computer('no-engines-here')
    with pytest.raises(ValueError, match=f'aiida-mlffdiff setup --engines deepmd --computer {computer.label}'):
        default_codes(['deepmd_dp'], computer.label)


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'functionals': ['pbe', 'b3lyp']}, "unknown functional(s) 'b3lyp'"),
        ({'architectures': ['mace', 'schnet']}, 'unknown architecture'),
        ({'architectures': [], 'functionals': ['pbe']}, 'no architecture and no pretrained model'),
        ({'functionals': []}, 'give at least one functional'),
        ({'temperatures': []}, 'temperature'),
        ({'temperatures': [600, -5]}, 'temperature'),
        ({'functionals': ['pbe', 'pbe']}, 'lists a value twice'),
        (
            {'overrides': {'sampling': {'n_configurations': 4, 'rattle_A': 0.2, 'rattle_max_A': 0.1}}},
            'rattle_max_A (0.1 Å) must not be below rattle_A',
        ),
        ({'overrides': {'sampling': {'n_configurations': 0}}}, 'n_configurations must be at least 1'),
        ({'overrides': {'reference_max_failed_fraction': 1.5}}, 'max_failed_fraction must be in [0, 1]'),
    ],
)
def test_bad_inputs_are_refused_at_submission(primitive, stand_in_codes, pseudo_family, changes, message):
    builder, problem = None, None
    try:
        builder = builder_for(primitive, stand_in_codes, pseudo_family, **changes)
    except ValueError as exception:  # the builder may already refuse it
        problem = str(exception)
    if builder is not None:
        problem = validation_error(builder)
    assert problem is not None
    assert message in problem


def test_structure_and_codes_are_checked(primitive, stand_in_codes, pseudo_family):
    builder = builder_for(primitive, stand_in_codes, pseudo_family)
    del builder.diffusion['nequip']
    assert 'no diffusion inputs for nequip' in validation_error(builder)

    builder = builder_for(primitive, stand_in_codes, pseudo_family, architectures=['mace'])
    builder.diffusion['deepmd'] = builder.diffusion['mace']._inputs(prune=True)
    assert 'diffusion inputs for deepmd, which no row uses' in validation_error(builder)

    builder = builder_for(primitive, stand_in_codes, pseudo_family, pretrained=['chgnet-0.3.0'])
    builder.pretrained = {'sevenn': builder.pretrained['chgnet']}
    assert 'pretrained.sevenn must be a pretrained sevenn model' in validation_error(builder)

    builder = builder_for(primitive, stand_in_codes, pseudo_family)
    no_lithium = orm.StructureData(
        ase=primitive.get_ase()[[atom.index for atom in primitive.get_ase() if atom.symbol != 'Li']]
    )
    builder.md_structure = no_lithium.store()
    assert 'the md_structure has no Li' in validation_error(builder)

    builder = builder_for(primitive, stand_in_codes, pseudo_family)
    atoms = primitive.get_ase()
    atoms[0].symbol = 'Ce'  # in neither the test family (Li, P, S, Cl) nor the full offline set
    builder.structure = orm.StructureData(ase=atoms).store()
    assert 'Ce' in validation_error(builder)

    builder = builder_for(primitive, stand_in_codes, pseudo_family)
    del builder.reference['hse06']['code']
    assert 'no dft code' in validation_error(builder)

    builder = builder_for(primitive, stand_in_codes, pseudo_family)
    builder.reference['pbe']['dft_settings'] = orm.Dict({'ecutwfc': 25.0, 'cutoff': 3})
    assert "unknown setting keys ['cutoff']" in validation_error(builder)

    builder = builder_for(primitive, stand_in_codes, pseudo_family)
    parameters = builder.diffusion['mace']['md']['md']['parameters'].get_dict()
    del parameters['engine']
    builder.diffusion['mace']['md']['md']['parameters'] = orm.Dict(parameters)
    assert 'must name the MD engine' in validation_error(builder)


def summary(temperatures: dict[float, tuple[float, float, int]]) -> orm.Dict:
    return orm.Dict(
        {
            'temperatures': {
                f'T_{t:.0f}K': {
                    'temperature_K': t,
                    'D_cm2_s': d,
                    'D_err_cm2_s': err,
                    'n_replicas': n,
                    'simulated_time_ps': n * 3.0,
                    'converged': True,
                }
                for t, (d, err, n) in temperatures.items()
            },
            'converged': True,
        }
    ).store()


def test_comparison_table_formats(aiida_localhost):
    from aiida_mlffdiff.calculations.evaluate import pretrained_model

    model = pretrained_model('chgnet-0.3.0')
    arrhenius = orm.Dict(
        {'Ea_eV': 0.3, 'Ea_err_eV': 0.02, 'D0_cm2_s': 1e-3, 'temperature_K': 300.0, 'D_at_T_cm2_s': 1e-8,
         'sigma_at_T_mS_cm': 0.5, 'sigma_interval_mS_cm': [0.2, 1.1]}
    ).store()  # fmt: skip
    metrics = orm.Dict({'force_rmse_meV_A': 120.0, 'energy_rmse_meV_atom': 4.0}).store()
    rows = {
        'pbe_chgnet': {
            'model': model,
            'diffusion': summary({600.0: (1e-5, 1e-6, 4), 800.0: (3e-5, 2e-6, 4)}),
            'arrhenius': arrhenius,
            'test_metrics': metrics,
        },
        'pretrained_chgnet': {'model': model, 'diffusion': summary({600.0: (2e-5, 1e-6, 2)})},
    }
    result, node = compare_study.run_get_node(failed=orm.Dict({'hse06_mace': 'it failed'}), **rows)
    assert node.is_finished_ok
    table = result.get_dict()
    assert [row['label'] for row in table['rows']] == ['pbe_chgnet', 'pretrained_chgnet']
    first, second = table['rows']
    assert first['functional'] == 'pbe'
    assert first['architecture'] == 'chgnet'
    assert first['force_rmse_meV_A'] == 120.0
    assert first['Ea_eV'] == 0.3
    assert first['n_replicas'] == 8
    assert second['Ea_eV'] is None
    assert second['n_replicas'] == 2
    assert table['failed'] == {'hse06_mace': 'it failed'}
    text = format_table(table['rows'])
    assert 'D(600 K) (cm²/s)' in text
    assert 'D(800 K) (cm²/s)' in text
    assert '0.3 ± 0.02' in text
    assert '0.5 [0.2, 1.1] @300 K' in text
    parsed = list(csv.DictReader(io.StringIO(table_csv(table['rows']))))
    assert float(parsed[0]['D_800K_cm2_s']) == 3e-5
    assert parsed[1]['D_800K_cm2_s'] == ''
    assert parsed[1]['Ea_eV'] == ''
    _, failed = compare_study.run_get_node()
    assert failed.exit_status == 340


def test_comparison_table_never_shows_an_unresolved_number(aiida_localhost):
    """The demo's old table printed Ea = −0.21 eV and σ(300 K) = 7.5e5 mS/cm as results: now each is "unresolved
    [k]" with its reason under the table, the CSV leaves the cells empty and names the reason, the JSON rows keep the
    raw numbers next to the verdicts."""
    from aiida_mlffdiff.calculations.evaluate import pretrained_model

    model = pretrained_model('chgnet-0.3.0')
    diffusion = summary({400.0: (3e-6, 2e-7, 4), 500.0: (1.4e-6, 1e-7, 4), 600.0: (2e-6, 3e-6, 4)})
    arrhenius = orm.Dict(
        {'Ea_eV': -0.21, 'Ea_err_eV': 0.05, 'D0_cm2_s': 5e-9, 'temperature_K': 300.0, 'temperatures_K': [400.0, 500.0],
         'D_cm2_s': [3e-6, 1.4e-6], 'D_at_T_cm2_s': 8e-6, 'D_interval_cm2_s': [5e-6, 1.2e-5],
         'sigma_at_T_mS_cm': 7.5e5, 'sigma_interval_mS_cm': [4.1e5, 1.2e6]}
    ).store()  # fmt: skip
    result, node = compare_study.run_get_node(
        pbe_chgnet={'model': model, 'diffusion': diffusion, 'arrhenius': arrhenius}
    )
    assert node.is_finished_ok
    (row,) = result.get_dict()['rows']
    assert row['Ea_eV'] == -0.21  # the raw number stays in the provenance and the JSON
    assert row['Ea_unresolved'] == 'Ea = -0.21 eV ≤ 0: D does not rise with T'
    assert row['sigma_unresolved'].startswith('σ rests on an unresolved Ea')
    assert row['D_extrapolated_unresolved'].startswith('D rests on an unresolved Ea')
    assert row['temperatures']['T_600K']['unresolved'].startswith('its error bar reaches zero')
    assert row['temperatures']['T_400K']['unresolved'] is None
    text = format_table([row])
    assert '-0.21' not in text.split('unresolved (not results):')[0]
    assert '7.5e+05' not in text
    assert 'unresolved [1]' in text  # D(600 K)
    assert 'unresolved [3]' in text  # σ
    assert '[2] pbe_chgnet Ea: Ea = -0.21 eV ≤ 0: D does not rise with T' in text
    assert '3e-06 ± 2e-07' in text  # a resolved D is still shown
    (parsed,) = csv.DictReader(io.StringIO(table_csv([row])))
    assert parsed['Ea_eV'] == ''
    assert parsed['Ea_unresolved'].startswith('Ea = -0.21 eV')
    assert parsed['sigma_extrapolated_mS_cm'] == ''
    assert parsed['sigma_low_mS_cm'] == ''
    assert parsed['D_600K_cm2_s'] == ''
    assert parsed['D_600K_unresolved'].startswith('its error bar reaches zero')
    assert float(parsed['D_400K_cm2_s']) == 3e-6
    assert parsed['D_400K_unresolved'] == ''


# ------------------------------------------------------------------------------------------------------ real runs
def tiny_study(primitive, pw, family, engine_code, architectures, codes=None, **changes):
    codes = codes or {}
    for architecture in architectures:
        for key in code_keys([architecture], []):
            codes.setdefault(key, engine_code(architecture, key.split('_', 1)[1]))
    builder = MlffDiffusionStudyWorkChain.get_builder_from_protocol(
        primitive,
        changes.pop('functionals', ['pbe', 'hse06']),
        architectures,
        [400, 500],
        protocol='fast',
        dft_code=pw,
        codes=codes,
        pseudo_family=family,
        overrides={'dft_overrides': FAST_OVERRIDES},  # 25 Ry and a tight SCF
        **changes,
    )
    return builder


def ancestors_of(node, node_class) -> list:
    query = orm.QueryBuilder().append(orm.Node, filters={'id': node.pk}, tag='node')
    query.append(node_class, with_descendants='node', project='id')
    return query.all(flat=True)


@pytest.mark.engines
@pytest.mark.daemon
def test_tiny_study_through_the_daemon(
    primitive, qe_code, pseudo_family, engine_code, submit_and_await, aiida_localhost, tmp_path
):
    """PBE and HSE06 on 8 configurations of the 13-atom cell → MACE (fast) → D at 400 and 500 K, via the daemon.

    The DeePMD training code is broken on purpose: its rows fail and are reported, the MACE rows finish (one study
    for both checks: the reference data are the expensive part).
    """
    from aiida_quantumespresso.calculations.pw import PwCalculation

    broken = orm.InstalledCode(label='dp-broken', computer=aiida_localhost, filepath_executable='/bin/false').store()
    codes = {'deepmd_dp': broken, 'deepmd_python': engine_code('mace', 'python')}  # never reached: training fails
    builder = tiny_study(primitive, qe_code, pseudo_family, engine_code, ['mace', 'deepmd'], codes=codes)
    node = submit_and_await(builder, timeout=1800)
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert node.exit_status == MlffDiffusionStudyWorkChain.exit_codes.ERROR_SOME_BRANCHES_FAILED.status, report
    assert 'pbe_deepmd' in node.exit_message
    assert set(node.outputs.training_sets) == {'pbe', 'hse06'}
    assert set(node.outputs.models) == {'pbe_mace', 'hse06_mace'}
    failed = node.outputs.comparison['failed']
    assert set(failed) == {'pbe_deepmd', 'hse06_deepmd'}
    assert 'TrainingWorkChain' in failed['pbe_deepmd']

    # What ran is what the study stores: the MD parameters (engine included) and the hyper-parameters.
    chain = node.base.links.get_outgoing(link_label_filter='diffusion_pbe_mace').one().node
    assert chain.inputs.md.md.parameters.get_dict() == node.inputs.diffusion.mace.md.md.parameters.get_dict()
    assert chain.inputs.md.md.parameters['engine'] == 'ase'
    training = node.base.links.get_outgoing(link_label_filter='training_pbe_mace').one().node
    assert training.inputs.train.train.parameters.pk == node.inputs.training.mace.train.train.parameters.pk

    # The table from the provenance graph equals the comparison node and the values stored on the nodes.
    rows = study_rows(node)
    assert rows == node.outputs.comparison['rows']
    for row in rows:
        label = row['label']
        stored = node.outputs.diffusion[label]['temperatures']
        assert {entry['D_cm2_s'] for entry in row['temperatures'].values()} == {
            entry['D_cm2_s'] for entry in stored.values()
        }
        assert row['force_rmse_meV_A'] == node.outputs.test_metrics[label]['force_rmse_meV_A']
        assert math.isfinite(row['force_rmse_meV_A'])
        assert row['Ea_eV'] == node.outputs.arrhenius[label]['Ea_eV']
        assert row['model_pk'] == node.outputs.models[label].pk
        # tiny models on a 13-atom cell: Ea may come out ≤ 0; the verdict stored with the fit is the table's
        assert row['Ea_unresolved'] == node.outputs.arrhenius[label]['unresolved']['Ea']
        if row['Ea_eV'] <= 0:
            assert row['Ea_unresolved'].startswith('Ea = ')
    pbe, hse = (node.outputs.training_sets[f] for f in ('pbe', 'hse06'))
    assert pbe.functional == 'pbe'
    assert hse.functional == 'hse06'
    assert pbe.get_atoms()[1].get_potential_energy() != hse.get_atoms()[1].get_potential_energy()

    # Lineage: every D reaches the pw CalcJobs of its functional through the model and its training set.
    diffusion = node.outputs.diffusion['hse06_mace']
    pw_calculations = ancestors_of(diffusion, PwCalculation)
    assert len(pw_calculations) >= 8
    functionals = {orm.load_node(pk).inputs.parameters['SYSTEM'].get('input_dft', 'pbe') for pk in pw_calculations}
    assert functionals == {'hse'}

    group = orm.load_group(f'mlffdiff/study/{node.pk}')
    assert node.outputs.comparison.pk in {n.pk for n in group.nodes}

    runner = CliRunner()
    result = runner.invoke(cmd_root, ['report', str(node.pk)])
    assert result.exit_code == 0, result.output
    assert 'hse06' in result.output
    assert 'mace' in result.output
    assert 'D(500 K)' in result.output
    assert 'MD engine' in result.output
    assert 'pbe_deepmd: TrainingWorkChain' in result.output
    for row in rows:  # an unresolved Ea is printed as "unresolved [k]" with its reason, never as a number
        if row['Ea_unresolved']:
            assert f'{row["label"]} Ea: {row["Ea_unresolved"]}' in result.output
            assert f'{row["Ea_eV"]:.3g} ± ' not in result.output
    result = runner.invoke(cmd_root, ['report', str(node.pk), '--json'])
    assert json.loads(result.output)['rows'][0]['label'] == rows[0]['label']
    result = runner.invoke(cmd_root, ['report', str(node.pk), '--csv'])
    assert len(list(csv.DictReader(io.StringIO(result.output)))) == 2
    result = runner.invoke(cmd_root, ['plot', str(node.pk), '-o', str(tmp_path / 'plots')])
    assert result.exit_code == 0, result.output
    assert (tmp_path / 'plots' / 'arrhenius.png').stat().st_size > 10_000
    assert len(list((tmp_path / 'plots').glob('msd_*.png'))) == 4
