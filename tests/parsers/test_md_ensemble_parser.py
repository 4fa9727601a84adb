"""``MdEnsembleParser`` on stored real outputs of the driver (tests/parsers/fixtures/md_ensemble, see its README)."""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_mlffdiff.analysis import collective_msd, tracer_msd
from aiida_mlffdiff.calculations.md_ensemble import MdEnsembleCalculation
from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.data.msd import MsdData
from aiida_mlffdiff.parsers.md_ensemble import MdEnsembleParser

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'md_ensemble'
EXIT_CODES = MdEnsembleCalculation.exit_codes
PARAMETERS = {
    'temperature_K': 300.0,
    'timestep_fs': 1.0,
    'equilibration_ps': 0.2,
    'production_ps': 2.0,
    'sampling_interval_fs': 10.0,
    'n_replicas': 3,
    'seeds': [5, 6, 7],
    'engine': 'ase',
}


def fixture_files(name: str = 'mixed') -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (FIXTURES / name).iterdir()}


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def parse(aiida_localhost, lj_configurations, tmp_path):
    """``parse(files, **parameters)``: a finished CalcJobNode with these retrieved files, parsed."""

    def factory(files: dict[str, bytes], **parameters):
        path = tmp_path / 'mlff_compiled.model'
        path.write_bytes(b'stand-in for a MACE model')
        model = MlffModel.from_file(
            path, architecture='mace', species=['Cl', 'Li', 'P', 'S'], cutoff_A=4.0, engine='mace'
        )
        structure = orm.StructureData(ase=lj_configurations(n=1, seed=0)[0])
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:mlffdiff.md_ensemble')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 2})
        node.base.links.add_incoming(model.store(), LinkType.INPUT_CALC, 'model')
        node.base.links.add_incoming(structure.store(), LinkType.INPUT_CALC, 'structure')
        node.base.links.add_incoming(orm.Dict({**PARAMETERS, **parameters}).store(), LinkType.INPUT_CALC, 'parameters')
        node.store()
        retrieved = orm.FolderData()
        for name, content in files.items():
            retrieved.base.repository.put_object_from_bytes(content, name)
        retrieved.base.links.add_incoming(node, LinkType.CREATE, 'retrieved')
        retrieved.store()
        return MdEnsembleParser.parse_from_node(node, store_provenance=False)

    return factory


def test_blown_up_replica_is_excluded(parse, lj_configurations):
    results, calcfunction = parse(fixture_files())
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    thermo = results['thermo'].get_dict()
    assert [r['status'] for r in thermo['replicas']] == ['ok', 'ok', 'atoms_too_close']
    assert (thermo['n_ok'], thermo['n_excluded'], thermo['excluded']) == (2, 1, [2])
    assert '0.311' in thermo['replicas'][2]['message']
    assert thermo['replicas'][2]['n_frames_done'] == 32
    assert thermo['replicas'][2]['temperature_mean_K'] > 3 * 300
    for replica in thermo['replicas'][:2]:
        assert 200 < replica['temperature_mean_K'] < 400
        assert replica['temperature_std_K'] > 0
        assert np.isfinite(replica['energy_drift_eV_atom_ps'])

    msd = results['msd']
    assert isinstance(msd, MsdData)
    assert msd.n_replicas == 2
    assert (msd.species, msd.n_ions, msd.temperature_K) == ('Li', 4, 300.0)
    assert msd.volume_A3 == pytest.approx(lj_configurations(n=1, seed=0)[0].get_volume())
    stored = np.load(FIXTURES / 'mixed' / 'md_ensemble.npz')
    np.testing.assert_allclose(msd.time_ps, np.arange(201) * 0.01)
    for row, replica in enumerate((0, 1)):
        positions, drift = stored['positions_A'][replica], stored['framework_com_A'][replica]
        np.testing.assert_allclose(msd.msd_A2[row], tracer_msd(positions, drift=drift), atol=1e-12)
        np.testing.assert_allclose(msd.collective_msd_A2[row], collective_msd(positions, drift=drift), atol=1e-12)
        assert not np.allclose(msd.msd_A2[row], tracer_msd(positions)), 'the framework drift is corrected'
    assert np.isfinite(msd.msd_A2).all()
    assert msd.msd_A2[:, -1].min() > 0
    info = results['run_info'].get_dict()
    assert info['versions']['ase'] == '3.29.0'
    assert 0 < info['timing']['model_share'] < 1


def test_too_many_failed_keeps_the_good_msd(parse):
    results, calcfunction = parse(fixture_files(), max_failed_fraction=0.2)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_TOO_MANY_FAILED_REPLICAS.status
    assert '1 of 3 failed' in calcfunction.exit_message
    assert results['msd'].n_replicas == 2
    assert results['thermo']['n_excluded'] == 1


def test_the_charge_of_the_mobile_ion_comes_from_the_parameters(parse):
    assert parse(fixture_files())[0]['msd'].charge == 1.0  # the default: a monovalent ion
    results, _ = parse(fixture_files(), mobile_charge=2.0)  # e.g. Mg2+: the conductivity scales with its square
    assert results['msd'].charge == 2.0


def test_all_replicas_failed(parse):
    files = fixture_files()
    arrays = dict(np.load(FIXTURES / 'mixed' / 'md_ensemble.npz'))
    arrays['status'] = np.array(['nan', 'temperature_runaway', 'atoms_too_close'])
    files['md_ensemble.npz'] = npz_bytes(arrays)
    results, calcfunction = parse(files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_ALL_REPLICAS_FAILED.status
    assert 'replica 0: nan' in calcfunction.exit_message
    assert results['thermo']['n_ok'] == 0
    assert 'msd' not in results


def test_nan_positions_of_an_ok_replica_are_excluded(parse):
    files = fixture_files()
    arrays = dict(np.load(FIXTURES / 'mixed' / 'md_ensemble.npz'))
    arrays['positions_A'][1, 50] = np.nan
    files['md_ensemble.npz'] = npz_bytes(arrays)
    results, calcfunction = parse(files, max_failed_fraction=0.9)
    assert calcfunction.is_finished_ok
    assert results['thermo']['excluded'] == [1, 2]
    assert results['msd'].n_replicas == 1


@pytest.mark.parametrize(
    ('change', 'exit_code', 'message'),
    [
        ('no_info', 'ERROR_MISSING_OUTPUT', 'md_ensemble_info.json not retrieved'),
        ('bad_info', 'ERROR_MISSING_OUTPUT', 'is not JSON'),
        ('no_npz', 'ERROR_MISSING_OUTPUT', 'md_ensemble.npz not retrieved'),
        ('bad_npz', 'ERROR_MISSING_OUTPUT', 'unreadable'),
        ('short_npz', 'ERROR_MISSING_OUTPUT', 'lacks status'),
        ('model_load_failed', 'ERROR_MODEL_LOAD_FAILED', 'could not load'),
        ('md_failed', 'ERROR_MD_FAILED', 'could not run'),
    ],
)
def test_failures(parse, change, exit_code, message):
    files = fixture_files()
    if change == 'no_info':
        del files['md_ensemble_info.json']
        files['md_ensemble.err'] = b'Traceback ...\nKilled\n'
    elif change == 'bad_info':
        files['md_ensemble_info.json'] = b'{not json'
    elif change == 'no_npz':
        del files['md_ensemble.npz']
    elif change == 'bad_npz':
        files['md_ensemble.npz'] = b'not an archive'
    elif change == 'short_npz':
        arrays = dict(np.load(FIXTURES / 'mixed' / 'md_ensemble.npz'))
        del arrays['status']
        files['md_ensemble.npz'] = npz_bytes(arrays)
    else:
        words = {'model_load_failed': 'mace could not load x', 'md_failed': 'the ensemble could not run: boom'}
        files['md_ensemble_info.json'] = json.dumps({'status': change, 'message': words[change]}).encode()
        del files['md_ensemble.npz']
    results, calcfunction = parse(files)
    assert calcfunction.exit_status == getattr(EXIT_CODES, exit_code).status
    assert message in calcfunction.exit_message
    assert 'msd' not in results
