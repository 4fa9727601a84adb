"""``EvaluateParser`` on stored outputs of the driver (tests/parsers/fixtures/evaluate, see its README)."""

from __future__ import annotations

import io
import json
import pathlib
import re

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_mlffdiff.calculations.evaluate import EvaluateCalculation, pretrained_model
from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.parsers.evaluate import EvaluateParser

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'evaluate'
EXIT_CODES = EvaluateCalculation.exit_codes


@pytest.fixture
def dataset(make_training_set):
    """The dataset every fixture was produced on: 4 LJ configurations (8, 12, 16, 8 atoms), seed 0."""
    return make_training_set(n=4, seed=0)


@pytest.fixture
def mace_model(tmp_path):
    path = tmp_path / 'model_compiled.model'
    path.write_bytes(b'stand-in for a MACE model')
    return MlffModel.from_file(path, architecture='mace', species=['Cl', 'Li', 'P', 'S'], cutoff_A=5.0, engine='mace')


@pytest.fixture
def parse(aiida_localhost):
    """``parse(model, dataset, files)``: a finished CalcJobNode with these retrieved files, parsed.

    ``files`` is a fixture folder name or a dict name → bytes. Returns ``(results, calcfunction_node)``.
    """

    def factory(model, dataset, files):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:mlffdiff.evaluate')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.base.links.add_incoming(model.store(), LinkType.INPUT_CALC, 'model')
        node.base.links.add_incoming(dataset, LinkType.INPUT_CALC, 'dataset')
        node.store()
        retrieved = orm.FolderData()
        if isinstance(files, str):
            retrieved.base.repository.put_object_from_tree(str(FIXTURES / files))
        else:
            for name, content in files.items():
                retrieved.base.repository.put_object_from_bytes(content, name)
        retrieved.base.links.add_incoming(node, LinkType.CREATE, 'retrieved')
        retrieved.store()
        return EvaluateParser.parse_from_node(node, store_provenance=False)

    return factory


def fixture_files(name: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (FIXTURES / name).iterdir()}


def test_default(parse, dataset):
    results, calcfunction = parse(pretrained_model('chgnet-0.3.0'), dataset, 'default')
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    metrics = results['metrics'].get_dict()

    # hand computation from the stored predictions and the dataset's labels
    predicted = np.load(FIXTURES / 'default' / 'predictions.npz')
    atoms_list = dataset.get_atoms()
    n_atoms = np.array([len(a) for a in atoms_list])
    e_ref = np.array([a.get_potential_energy() for a in atoms_list])
    f_ref = np.concatenate([a.get_forces() for a in atoms_list])
    s_ref = np.array([a.get_stress(voigt=True) for a in atoms_list])
    de = (predicted['energy_eV'] - e_ref) / n_atoms * 1000
    df = (predicted['forces_eV_A'] - f_ref) * 1000
    ds = predicted['stress_eV_A3'] - s_ref
    assert metrics['energy_mae_meV_atom'] == pytest.approx(np.abs(de).mean())
    assert metrics['energy_rmse_meV_atom'] == pytest.approx(np.sqrt((de**2).mean()))
    assert metrics['force_mae_meV_A'] == pytest.approx(np.abs(df).mean())
    assert metrics['force_rmse_meV_A'] == pytest.approx(np.sqrt((df**2).mean()))
    assert metrics['stress_mae_meV_A3'] == pytest.approx(np.abs(ds).mean() * 1000)
    assert metrics['stress_rmse_GPa'] == pytest.approx(np.sqrt((ds**2).mean()) * 160.2176634)
    lithium = np.concatenate([a.get_chemical_symbols() for a in atoms_list]) == 'Li'
    assert metrics['force_mae_per_species_meV_A']['Li'] == pytest.approx(np.abs(df[lithium]).mean())
    assert (metrics['n_structures'], metrics['n_atoms']) == (4, 44)
    assert (metrics['architecture'], metrics['model'], metrics['functional']) == ('chgnet', 'chgnet-0.3.0', 'lj-test')

    parity = results['parity']
    np.testing.assert_allclose(parity.get_array('energy_per_atom_reference_eV'), e_ref / n_atoms)
    np.testing.assert_allclose(parity.get_array('energy_per_atom_predicted_eV'), predicted['energy_eV'] / n_atoms)
    np.testing.assert_allclose(parity.get_array('forces_reference_eV_A'), f_ref)
    assert parity.get_array('forces_predicted_eV_A').shape == (44, 3)
    assert parity.get_array('stress_predicted_eV_A3').shape == (4, 6)
    np.testing.assert_array_equal(parity.get_array('n_atoms'), [8, 12, 16, 8])

    run_info = results['run_info'].get_dict()
    assert run_info['versions']['engine_version'] == '0.4.2'
    assert run_info['threads']['torch_intra_op'] == 1
    assert run_info['timing']['evaluate_s'] > 0


@pytest.mark.parametrize(
    ('folder', 'expected'),
    [
        (
            'model_load_failed',
            r'engine package `mace` \(mace-torch\) cannot be imported by .*Is this the python of the mace',
        ),
        ('corrupt_model', 'mace could not load model_compiled.model .* neither a TorchScript archive'),
    ],
)
def test_model_load_failed(folder, expected, parse, dataset, mace_model):
    results, calcfunction = parse(mace_model, dataset, folder)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_MODEL_LOAD_FAILED.status
    assert calcfunction.exit_message.startswith('The engine environment could not load the model: ')
    assert re.search(expected, calcfunction.exit_message)
    assert 'metrics' not in results


def test_nan_predictions(parse, dataset, mace_model):
    results, calcfunction = parse(mace_model, dataset, 'nan_predictions')
    assert calcfunction.exit_status == EXIT_CODES.ERROR_NON_FINITE_PREDICTIONS.status
    assert '4 of 4 configurations (indices 0, 1, 2, 3)' in calcfunction.exit_message
    assert 'metrics' not in results


def test_one_non_finite_force(parse, dataset):
    """A single NaN force component (atom 20: configuration 2) is found and named."""
    files = fixture_files('default')
    with np.load(io.BytesIO(files['predictions.npz'])) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays['forces_eV_A'][20, 1] = np.inf
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files['predictions.npz'] = buffer.getvalue()
    _, calcfunction = parse(pretrained_model('chgnet-0.3.0'), dataset, files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_NON_FINITE_PREDICTIONS.status
    assert '1 of 4 configurations (indices 2)' in calcfunction.exit_message


def test_missing_output(parse, dataset):
    """The job died before the driver wrote anything (e.g. killed for memory): the stderr's last line is quoted."""
    files = {'evaluate.err': b'Loading model...\n/bin/bash: line 12: 4242 Killed python evaluate_model.py\n'}
    _, calcfunction = parse(pretrained_model('7net-0'), dataset, files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_MISSING_OUTPUT.status
    assert 'evaluate.json not retrieved' in calcfunction.exit_message
    assert 'Killed python evaluate_model.py' in calcfunction.exit_message


def test_status_ok_but_no_predictions(parse, dataset):
    files = fixture_files('default')
    del files['predictions.npz']
    _, calcfunction = parse(pretrained_model('chgnet-0.3.0'), dataset, files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_MISSING_OUTPUT.status
    assert 'predictions.npz not retrieved' in calcfunction.exit_message


def test_evaluation_failed(parse, dataset):
    info = {'status': 'evaluation_failed', 'message': 'evaluating configuration 3 (Li4PS2Cl) raised KeyError: 17'}
    _, calcfunction = parse(pretrained_model('chgnet-0.3.0'), dataset, {'evaluate.json': json.dumps(info).encode()})
    assert calcfunction.exit_status == EXIT_CODES.ERROR_EVALUATION_FAILED.status
    assert 'configuration 3 (Li4PS2Cl) raised KeyError' in calcfunction.exit_message


def test_predictions_of_another_dataset(parse, make_training_set):
    """Predictions for 4 configurations against a dataset of 5: refused, not silently compared."""
    _, calcfunction = parse(pretrained_model('chgnet-0.3.0'), make_training_set(n=5, seed=0), 'default')
    assert calcfunction.exit_status == EXIT_CODES.ERROR_INCONSISTENT_OUTPUT.status
    assert '4 configurations predicted' in calcfunction.exit_message


def test_exit_codes_are_documented():
    expected = {
        'ERROR_MISSING_OUTPUT': 300,
        'ERROR_MODEL_LOAD_FAILED': 310,
        'ERROR_EVALUATION_FAILED': 320,
        'ERROR_INCONSISTENT_OUTPUT': 330,
        'ERROR_NON_FINITE_PREDICTIONS': 340,
    }
    for name, status in expected.items():
        assert EXIT_CODES[name].status == status
        assert EXIT_CODES[name].message
