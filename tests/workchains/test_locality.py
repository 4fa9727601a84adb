"""LocalityWorkChain: the receptive-field property on a real model, and what is refused at submission."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlffdiff.calculations.evaluate import pretrained_model
from aiida_mlffdiff.structures import li6ps5cl_structure
from aiida_mlffdiff.workchains.locality import LocalityWorkChain, default_radii_A, model_receptive_field_A


def validation_error(builder) -> str | None:
    spec = LocalityWorkChain.spec().inputs
    problem = spec.validate(spec.pre_process(builder._inputs(prune=True)))
    return None if problem is None else problem.message


@pytest.fixture
def conventional():
    return li6ps5cl_structure(cell='conventional').store()


def stand_in_code(aiida_localhost):
    return orm.InstalledCode(label='never-run', computer=aiida_localhost, filepath_executable='/bin/true').store()


def test_pretrained_receptive_fields_and_the_supercell_they_need(conventional, aiida_localhost):
    """CHGNet 0.3.0: 4 layers × 6 Å; SevenNet-0: 5 × 5 Å. Their default sweep needs a supercell beyond max_atoms."""
    chgnet, sevennet = pretrained_model('chgnet-0.3.0'), pretrained_model('7net-0')
    assert model_receptive_field_A(chgnet) == 24.0
    assert model_receptive_field_A(sevennet) == 25.0
    builder = LocalityWorkChain.get_builder_from_model(chgnet, conventional, stand_in_code(aiida_localhost))
    radii = builder.parameters['radii_A']
    assert radii == default_radii_A(6.0, 24.0)
    assert radii[0] == 3.0  # below one cutoff ...
    assert radii[-1] > 48.0  # ... to beyond twice the receptive field
    assert 'more than max_atoms 5000' in validation_error(builder)
    builder = LocalityWorkChain.get_builder_from_model(
        chgnet, conventional, stand_in_code(aiida_localhost), radii_A=[3.0, 6.0, 9.0]
    )
    assert validation_error(builder) is None  # a 2x2x2 supercell: R up to 9 Å
    builder.parameters = orm.Dict({'radii_A': [3.0, 3.0], 'n_samples': 4})
    assert 'radii_A must be distinct positive radii' in validation_error(builder)


@pytest.mark.engines
def test_forces_do_not_see_beyond_twice_the_receptive_field(session_deepmd_model, engine_code, conventional):
    """DeePMD (se_atten_v2, cutoff 4 Å): the force on an atom depends on atoms up to 2 × 4 Å. With every atom within
    8.4 Å fixed (the others displaced by up to 0.087 Å) the force on the central atom does not change (round-off);
    with only 2 or 4 Å fixed it does (by hundreds of meV/Å, and by 0.6-10 meV/Å, measured). 416 atoms (2x2x2
    conventional Li6PS5Cl), 28 configurations."""
    model = session_deepmd_model
    assert model_receptive_field_A(model) == model.cutoff_A == 4.0  # a local descriptor: one cutoff deep
    builder = LocalityWorkChain.get_builder_from_model(
        model, conventional, engine_code('deepmd', 'python'), radii_A=[2.0, 4.0, 8.4], n_samples=2, amplitude_A=0.05
    )
    assert validation_error(builder) is None
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    profile = results['locality'].get_dict()
    assert profile['repetitions'] == [2, 2, 2]
    assert profile['n_atoms_supercell'] == 416
    assert profile['R_over_2rf'] == pytest.approx([0.25, 0.5, 1.05])
    assert set(profile['species']) == {'Cl', 'Li', 'P', 'S'}
    for species, entry in profile['species'].items():
        inside_2, inside_4, beyond = entry['errors_meV_A']
        assert beyond < 1e-2, (species, entry)  # zero to round-off (float32 model)
        assert inside_2 > 1.0, (species, entry)  # neighbours displaced: the force changes
        assert inside_4 > 1e-2, (species, entry)  # only atoms 4-8 Å away displaced: small, but not round-off
        assert entry['radius_below_threshold_A'] == (4.0 if inside_4 < 1.0 else 8.4)  # threshold 1 meV/Å
    configurations = results['configurations']
    assert configurations.numsteps == 4 * (1 + 3 * 2)
    assert configurations.creator.process_label == 'locality_configurations'
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert 'Li: locality error' in report
    radius = profile['species']['Li']['radius_below_threshold_A']
    assert f'below 1 meV/Å from R = {radius:g} Å (R/2r_f = {radius / 8:.2f})' in report
    errors = {species: entry['errors_meV_A'] for species, entry in profile['species'].items()}
    print(f'\nlocality errors (meV/Å) at R = 2, 4, 8.4 Å: {errors}')


def test_the_study_report_finds_the_locality_tests_of_its_models(aiida_localhost, tmp_path):
    """A study's models, each with a finished LocalityWorkChain, give one report line each (provenance query)."""
    from aiida.common.links import LinkType

    from aiida_mlffdiff.data.mlff_model import MlffModel
    from aiida_mlffdiff.study_report import format_locality, study_locality

    path = tmp_path / 'model.pth'
    path.write_bytes(b'stand-in')
    model = MlffModel.from_file(path, architecture='deepmd', species=['Li', 'S'], cutoff_A=4.0, engine='deepmd')
    model.store()
    study = orm.WorkflowNode()
    study.set_process_label('MlffDiffusionStudyWorkChain')
    study.store()
    model.base.links.add_incoming(study, LinkType.RETURN, 'models__pbe_deepmd')
    chain = orm.WorkflowNode()
    chain.set_process_label('LocalityWorkChain')
    chain.base.links.add_incoming(model, LinkType.INPUT_WORK, 'model')
    chain.set_exit_status(0)
    chain.store()
    profile = orm.Dict(
        {'receptive_field_A': 4.0, 'threshold_meV_A': 1.0,
         'species': {'Li': {'radius_below_threshold_A': 8.4}, 'S': {'radius_below_threshold_A': None}}}
    ).store()  # fmt: skip
    profile.base.links.add_incoming(chain, LinkType.RETURN, 'locality')
    tests = study_locality(study)
    assert tests == [
        {'label': 'pbe_deepmd', 'pk': chain.pk, 'receptive_field_A': 4.0, 'threshold_meV_A': 1.0,
         'radius_below_threshold_A': {'Li': 8.4, 'S': None}}
    ]  # fmt: skip
    line = format_locality(tests)
    assert 'locality pbe_deepmd' in line
    assert 'Li 8.4 Å (1.05)' in line
    assert 'S not reached' in line


@pytest.mark.engines
def test_a_pretrained_model_inside_its_receptive_field(engine_code, conventional):
    """CHGNet 0.3.0 (4 layers × 6 Å, r_f = 24 Å) through PredictCalculation in the pretrained environment: with atoms
    beyond 3 or 6 Å displaced, well inside r_f, the force on every central atom changes, less so the more is fixed.
    416 atoms (2x2x2 conventional Li6PS5Cl), 2 samples per radius and species."""
    model = pretrained_model('chgnet-0.3.0')
    builder = LocalityWorkChain.get_builder_from_model(
        model, conventional, engine_code('pretrained', 'python'), radii_A=[3.0, 6.0], n_samples=2
    )
    assert builder.receptive_field_A.value == 24.0  # from the pretrained record, an input of the chain
    assert validation_error(builder) is None
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    profile = results['locality'].get_dict()
    assert profile['n_atoms_supercell'] == 416
    assert profile['R_over_2rf'] == pytest.approx([3.0 / 48, 6.0 / 48])
    for species, entry in profile['species'].items():
        near, farther = entry['errors_meV_A']
        assert near > farther > 0.0, (species, entry)  # inside r_f: never zero
        assert entry['radius_below_threshold_A'] is None or entry['radius_below_threshold_A'] == 6.0
    predict = next(child for child in node.called if child.process_label == 'PredictCalculation')
    assert predict.inputs.model.pk == model.pk
    errors = {species: [round(e, 3) for e in entry['errors_meV_A']] for species, entry in profile['species'].items()}
    print(f'\nCHGNet 0.3.0 locality errors (meV/Å) at R = 3, 6 Å: {errors}')
