"""MlffDiffusionStudyWorkChain: protocol builder, validation at submission, comparison table, real tiny studies."""

from __future__ import annotations

import csv
import io
import json
import math
import time

import pytest
from aiida import orm
from aiida.engine import run_get_node
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
def stand_in_codes(own_computer):
    """Codes for every key of a study that are never run (builder and validation tests), on a computer of their
    own: the engine tests register real codes (torch-sim ones too) on the test localhost, which would change the
    MD engine the builder picks."""
    computer = own_computer('study-stand-ins')

    def code(label, plugin=None):
        return orm.InstalledCode(
            label=label, computer=computer, filepath_executable='/bin/true', default_calc_job_plugin=plugin
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
        (
            {'pretrained': ['7net-0', '7net-l3i5']},
            'one zero-shot row per architecture, got 2 sevenn models (7net-0, 7net-l3i5)',
        ),
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


def test_training_choice_axes_are_resolved_on_the_client_and_checked(primitive, stand_in_codes, pseudo_family):
    """Reference levels and dataset sizes: each level's DFT settings are inputs (the last one in reference.<f>),
    the sizes a List; every bad axis value gives one clear message before anything runs."""
    builder = builder_for(
        primitive, stand_in_codes, pseudo_family, functionals=['pbe'], architectures=['mace'],
        reference_levels=['gamma', 'converged'], dataset_sizes=[4, 0.7, 1.0],
    )  # fmt: skip
    assert validation_error(builder) is None
    assert builder.reference_levels.get_list() == ['gamma', 'converged']
    assert builder.dataset_sizes.get_list() == [4, 0.7, 1.0]
    assert builder.reference['pbe']['level'].value == 'converged'
    assert builder.reference['pbe']['dft_settings']['kpoints_spacing'] == 0.4
    gamma = builder.level_settings['pbe_gamma'].get_dict()
    assert gamma['kpoints_spacing'] is None
    assert gamma['ecutwfc'] == builder.reference['pbe']['dft_settings']['ecutwfc'] == 25.0  # the study's override kept
    own = builder_for(
        primitive, stand_in_codes, pseudo_family, functionals=['pbe'], architectures=['mace'],
        reference_levels={'low_cutoff': {'ecutwfc': 20.0}, 'converged': 'converged'},
    )  # fmt: skip
    assert own.level_settings['pbe_low_cutoff']['ecutwfc'] == 20.0
    assert validation_error(own) is None

    with pytest.raises(ValueError, match="unknown reference level 'dense' for the qe engine; known: gamma, converged"):
        builder_for(primitive, stand_in_codes, pseudo_family, reference_levels=['gamma', 'dense'])
    checks = [
        ({'dataset_sizes': orm.List([4, 4])}, 'dataset_sizes lists a size twice'),
        ({'dataset_sizes': orm.List([0])}, 'dataset size 0 must be a count ≥ 1'),
        ({'dataset_sizes': orm.List([1.5])}, 'dataset size 1.5 must be a count ≥ 1 or a fraction in (0, 1]'),
        ({'dataset_sizes': orm.List([7])}, '[7] larger than the train part: 8 sampled configurations leave at most 6'),
        (
            {'dataset_sizes': orm.List([0.5])},
            'dataset size 0.5: 3 training configuration(s) are too few for mace with '
            'batch_size 4 (MACE drops an incomplete batch',
        ),
        ({'reference_levels': orm.List(['gamma', 'gamma'])}, 'reference_levels lists a level twice'),
        ({'reference_levels': orm.List(['converged'])}, 'reference_levels needs two or more levels'),
        ({'reference_levels': orm.List(['Gamma', 'converged'])}, 'lower-case letters'),
        ({'reference_levels': orm.List(['cheap', 'converged'])}, 'no level_settings for pbe_cheap'),
        ({'reference_levels': orm.List(['gamma', 'best'])}, 'reference.pbe.level must name the last reference level'),
    ]
    for change, message in checks:
        inputs = builder._inputs(prune=True)
        inputs.update(change)
        spec = MlffDiffusionStudyWorkChain.spec().inputs
        problem = spec.validate(spec.pre_process(inputs))
        assert problem is not None, change
        assert message in problem.message, (change, problem.message)
    inputs = builder._inputs(prune=True)
    del inputs['reference_levels']
    spec = MlffDiffusionStudyWorkChain.spec().inputs
    assert 'level_settings without reference_levels' in spec.validate(spec.pre_process(inputs)).message


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
    validation = orm.Dict({'forces_rmse_meV_A': 95.0, 'energy_rmse_meV_atom': 3.0, 'training_wall_s': 12.5}).store()
    rows = {
        'pbe_chgnet': {
            'model': model,
            'diffusion': summary({600.0: (1e-5, 1e-6, 4), 800.0: (3e-5, 2e-6, 4)}),
            'arrhenius': arrhenius,
            'test_metrics': metrics,
            'validation_metrics': validation,
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
    assert (first['validation_force_rmse_meV_A'], first['validation_energy_rmse_meV_atom']) == (95.0, 3.0)
    assert first['training_wall_s'] == 12.5
    assert second['validation_force_rmse_meV_A'] is None
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
    assert float(parsed[0]['validation_force_rmse_meV_A']) == 95.0
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


def synthetic_row(label, rmse, d_400, *, n_train=6, reference_rmse=None, unresolved=None):
    """A study row as study_rows gives it, with one temperature (400 K)."""
    return {
        'label': label, 'functional': 'pbe', 'reference_level': label.split('_')[1], 'dataset_size': None,
        'n_train': n_train, 'architecture': label.split('_')[-1], 'model_pk': 1, 'md_engine': 'ase',
        'force_rmse_meV_A': rmse, 'energy_rmse_meV_atom': 1.0,
        'force_rmse_reference_meV_A': rmse if reference_rmse is None else reference_rmse,
        'energy_rmse_reference_meV_atom': 1.0,
        'temperatures': {'T_400K': {'temperature_K': 400.0, 'D_cm2_s': d_400, 'D_err_cm2_s': 0.05 * d_400,
                                    'n_replicas': 2, 'converged': True, 'diffusive': True, 'unresolved': unresolved}},
        'Ea_eV': None, 'Ea_err_eV': None, 'D0_cm2_s': None, 'extrapolation_temperature_K': None,
        'D_extrapolated_cm2_s': None, 'sigma_extrapolated_mS_cm': None, 'sigma_interval_mS_cm': None,
        'n_replicas': 2, 'simulated_time_ps': 2.0, 'converged': True, 'Ea_unresolved': None,
        'D_extrapolated_unresolved': None, 'sigma_unresolved': None,
    }  # fmt: skip


def test_transport_correlation_picks_the_reference_and_judges_rho():
    """Force RMSE vs |ln D/D_ref|: the default reference is the largest model on the reference labels; monotone data
    give a resolved ρ > 0, a row with an unresolved D is left out and named, a given D_ref replaces the row's."""
    from aiida_mlffdiff.study_report import format_correlation, transport_correlation

    d_ref = 2.0e-6
    rows = [synthetic_row('pbe_k2_p100_mace', 40.0, d_ref, n_train=6)]
    rows += [synthetic_row('pbe_k2_p50_mace', 60.0, d_ref * 1.3, n_train=3)]
    rows += [
        synthetic_row(f'pbe_gamma_{i}_mace', 40.0 + 20 * i, d_ref * (1.5 + i), n_train=6, reference_rmse=50.0 + 30 * i)
        for i in range(1, 5)
    ]
    rows += [synthetic_row('pbe_gamma_9_deepmd', 300.0, d_ref, reference_rmse=310.0, unresolved='MSD not diffusive')]
    result = transport_correlation(rows)
    assert result['reference'] == 'pbe_k2_p100_mace'
    assert result['D_ref_cm2_s'] == d_ref
    assert result['temperature_K'] == 400.0
    assert [label for label, *_ in result['pairs']] == [
        'pbe_k2_p50_mace',
        *(f'pbe_gamma_{i}_mace' for i in range(1, 5)),
    ]
    assert result['left_out'] == {'pbe_gamma_9_deepmd': 'D(400 K) unresolved or missing'}
    correlation = result['correlation']
    assert correlation['rho'] == pytest.approx(1.0)
    assert correlation['interval'][0] > 0
    text = format_correlation(result)
    assert 'Spearman ρ = +1.00' in text
    assert 'force RMSE predicts |ln D/D_ref|' in text
    assert 'left out pbe_gamma_9_deepmd' in text
    given = transport_correlation(rows, reference_d_cm2_s=1e-6)
    assert given['reference'] == 'given'
    assert len(given['pairs']) == 6
    few = transport_correlation(rows[:3])
    assert few['correlation']['unresolved'] == '2 model(s): a rank correlation needs at least 4'
    assert 'Spearman ρ unresolved' in format_correlation(few)
    assert (
        transport_correlation(rows, reference='nonexistent')['unresolved']
        == 'no reference row with a resolved D at 400 K'
    )


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


@pytest.mark.engines
def test_training_choice_study_over_levels_sizes_and_architectures(
    primitive, qe_code, pseudo_family, engine_code, tmp_path, capsys
):
    """One study over the three training-choice axes: PBE labels at two k-point levels (Γ and 2×2×2) of the same 5
    configurations, nested train sets of 2 and 3 (all) configurations, MACE and NequIP, MD at 400 and 500 K: 8 rows.

    Asserts the label comparison, the nesting of the subsets (which configurations), one test set for every row,
    the errors against the reference labels, the report's columns and its "force RMSE vs transport" verdict.
    """
    codes = {}
    for architecture in ('mace', 'nequip'):
        for key in code_keys([architecture], []):
            codes[key] = engine_code(architecture, key.split('_', 1)[1])
    builder = MlffDiffusionStudyWorkChain.get_builder_from_protocol(
        primitive, ['pbe'], ['mace', 'nequip'], [400, 500], protocol='fast', dft_code=qe_code, codes=codes,
        pseudo_family=pseudo_family, reference_levels={'gamma': 'gamma', 'k2': {'kpoints_spacing': 0.7}},
        dataset_sizes=[2, 1.0],
        overrides={
            'sampling': {'n_configurations': 5, 'max_strain': 0.03, 'rattle_A': 0.1, 'seed': 0},
            'dft_overrides': {'ecutwfc': 25.0},
            'training_overrides': {'mace': {'max_epochs': 30, 'batch_size': 2}, 'nequip': {'max_epochs': 10}},
            'diffusion_overrides': {
                'replicas_per_batch': 2, 'max_replicas': 2, 'target_relative_error': 0.5,
                'md': {'timestep_fs': 1.0, 'equilibration_ps': 0.05, 'production_ps': 0.3,
                       'sampling_interval_fs': 10.0},
            },
        },
    )  # fmt: skip
    assert builder.level_settings['pbe_gamma']['kpoints_spacing'] is None
    builder.diffusion['nequip']['md']['max_iterations'] = orm.Int(1)  # a model that blows up fails at once
    started = time.perf_counter()
    _, node = run_get_node(builder)
    wall = time.perf_counter() - started
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    some_failed = MlffDiffusionStudyWorkChain.exit_codes.ERROR_SOME_BRANCHES_FAILED.status
    assert node.exit_status in (0, some_failed), report
    rows = {f'pbe_{level}_{size}_{arch}' for level in ('gamma', 'k2') for size in ('n2', 'p100')
            for arch in ('mace', 'nequip')}  # fmt: skip
    assert set(node.outputs.models) == rows  # every row trained
    # NequIP trained for 10 epochs on 2-4 configurations may blow up in MD (atoms too close, measured): such a row
    # fails alone, with the reason; the MACE rows of the same data run through
    failed = node.outputs.comparison['failed']
    assert all(label.endswith('_nequip') and 'DiffusionWorkChain' in why for label, why in failed.items()), failed
    assert {row for row in rows if row.endswith('_mace')} <= set(node.outputs.diffusion)

    # Reference quality: the Γ labels against the 2×2×2 labels of the same configurations, per species.
    errors = node.outputs.label_errors['pbe_gamma'].get_dict()
    assert (errors['level'], errors['reference_level']) == ('gamma', 'k2')
    assert errors['force_rmse_meV_A'] > 1.0  # a 13-atom cell: Γ alone is not converged
    assert set(errors['force_rmse_per_species_meV_A']) == {'Li', 'P', 'S', 'Cl'}
    histograms = node.outputs.label_histograms['pbe_gamma']
    assert histograms.get_array('counts_all').sum() == 3 * errors['n_atoms']

    # Nesting and one test set: which configurations each row trained and was tested on.
    trainings = {
        label: node.base.links.get_outgoing(link_label_filter=f'training_{label}').one().node for label in rows
    }
    for level in ('gamma', 'k2'):
        for arch in ('mace', 'nequip'):
            half, full = (trainings[f'pbe_{level}_{size}_{arch}'].outputs.split for size in ('n2', 'p100'))
            assert set(half.train.parent_indices) < set(full.train.parent_indices)
            assert (half.train.n_structures, full.train.n_structures) == (2, 3)
            assert half.train.reference_level == level
    tests = {label: tuple(chain.outputs.split.test.parent_indices) for label, chain in trainings.items()}
    assert len(set(tests.values())) == 1
    reference_tests = {chain.outputs.split.reference_test.sha256 for chain in trainings.values()}
    assert len(reference_tests) == 1  # every model is also tested on the same reference labels

    # The table: the axes and the errors against the reference labels, from the provenance graph.
    table = study_rows(node)
    assert table == node.outputs.comparison['rows']
    for row in table:
        assert row['reference_level'] in ('gamma', 'k2')
        assert row['n_train'] == {'n2': 2, 'p100': 3}[row['label'].split('_')[2]]
        assert row['dataset_size'] == {'n2': 2, 'p100': 1.0}[row['label'].split('_')[2]]
        assert math.isfinite(row['force_rmse_reference_meV_A'])
        assert row['training_wall_s'] > 0  # the cost of the model: the training job's clock ...
        assert row['md_atom_steps_per_s'] > 0  # ... and its MD's atom-steps per process-second
        if row['reference_level'] == 'k2':  # trained on the reference labels: both test errors are the same
            assert row['force_rmse_reference_meV_A'] == pytest.approx(row['force_rmse_meV_A'], rel=1e-9)
    runner = CliRunner()
    result = runner.invoke(cmd_root, ['report', str(node.pk)])
    assert result.exit_code == 0, result.output
    for column in ('labels', 'train configs', 'force RMSE vs ref (meV/Å)', 'training (s)', 'MD atom-steps/s'):
        assert column in result.output
    assert f'labels pbe_gamma against k2 (same configurations): force RMSE {errors["force_rmse_meV_A"]:.3g} meV/Å' in (
        result.output
    )
    data = json.loads(runner.invoke(cmd_root, ['report', str(node.pk), '--json']).output)
    assert data['label_errors']['pbe_gamma']['force_rmse_meV_A'] == pytest.approx(errors['force_rmse_meV_A'])
    correlation = data['transport_correlation']
    if correlation['correlation'] is None:  # tiny models, 1 ps: no D may be resolved at 400 K; the report says so
        assert correlation['unresolved'] == 'no reference row with a resolved D at 400 K'
        assert 'force RMSE vs transport: unresolved (no reference row with a resolved D at 400 K)' in result.output
    else:
        assert correlation['reference'].startswith('pbe_k2_')  # trained on the reference labels
        assert len(correlation['pairs']) + len(correlation['left_out']) == len(table) - 1
        assert 'force RMSE (vs reference labels) against |ln D/D_ref| at 400 K' in result.output
    result_plot = runner.invoke(cmd_root, ['plot', str(node.pk), '-o', str(tmp_path / 'plots')])
    assert result_plot.exit_code == 0, result_plot.output
    for name in ('learning_curves', 'label_errors', 'arrhenius_gamma', 'arrhenius_k2', 'rmse_vs_transport'):
        assert (tmp_path / 'plots' / f'{name}.png').stat().st_size > 10_000, name
    with capsys.disabled():
        print(f'\ntraining-choice study (1 functional × 2 levels × 2 sizes × 2 architectures): {wall:.0f} s wall')
        print(result.output)
