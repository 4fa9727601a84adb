"""``TrainParser`` on stored outputs of real training runs (tests/parsers/fixtures/train, see its README)."""

from __future__ import annotations

import csv
import hashlib
import math
import pathlib
import re

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_mlffdiff.calculations.train import TrainCalculation
from aiida_mlffdiff.calculations.writers import get_protocol_parameters, get_writer
from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.parsers.train import TrainParser
from aiida_mlffdiff.parsers.train_logs import last_error, read_deepmd, read_nequip

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'train'
EXIT_CODES = TrainCalculation.exit_codes
LPSC = ['Cl', 'Li', 'P', 'S']
VERSIONS = {'mace': '0.3.16', 'nequip': '0.19.1', 'deepmd': '3.2.0'}


def fixture_files(path: str) -> dict[str, bytes]:
    """The files of a fixture folder, ``'<architecture>/<case>'``, as name → bytes."""
    return {p.name: p.read_bytes() for p in (FIXTURES / path).iterdir()}


@pytest.fixture
def data_sets(make_training_set):
    """The training (24 configurations, seed 0) and validation (6, seed 1) sets the fixtures were produced on."""
    return make_training_set(n=24, seed=0), make_training_set(n=6, seed=1)


@pytest.fixture
def parse(aiida_localhost, aiida_code_installed, data_sets):
    """``parse(architecture, files, exit_status=None, store=False)``: a finished TrainCalculation node, parsed.

    ``files`` is a fixture folder (``'mace/default'``) or a dict name → bytes. The inputs are those of the fixture
    runs (fast protocol). Returns ``(results, calcfunction_node)``.
    """

    def factory(architecture: str, files, exit_status: int | None = None, store: bool = False):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:mlffdiff.train')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        code = aiida_code_installed(label=f'{architecture}-code', filepath_executable='/opt/envs/bin/train')
        code.base.extras.set('mlffdiff_engine_version', f'{VERSIONS[architecture]}-from-code')
        inputs = {
            'code': code,
            'architecture': orm.Str(architecture).store(),
            'training_set': data_sets[0],
            'validation_set': data_sets[1],
            'parameters': orm.Dict(get_protocol_parameters(architecture, 'fast')).store(),
            'seed': orm.Int(1).store(),
        }
        for label, value in inputs.items():
            node.base.links.add_incoming(value, LinkType.INPUT_CALC, label)
        node.store()
        if exit_status is not None:
            node.set_exit_status(exit_status)
        retrieved = orm.FolderData()
        content = fixture_files(files) if isinstance(files, str) else files
        for name, data in content.items():
            retrieved.base.repository.put_object_from_bytes(data, name)
        retrieved.base.links.add_incoming(node, LinkType.CREATE, 'retrieved')
        retrieved.store()
        return TrainParser.parse_from_node(node, store_provenance=store)

    return factory


@pytest.mark.parametrize('architecture', ['mace', 'nequip', 'deepmd'])
def test_default(architecture, parse):
    """A successful run: the model with its metadata, a finite learning curve and the final validation errors."""
    results, calcfunction = parse(architecture, f'{architecture}/default')
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert set(results) == {'model', 'learning_curve', 'validation_metrics'}

    writer = get_writer(architecture)
    model = results['model']
    assert isinstance(model, MlffModel)
    assert model.architecture == architecture
    assert model.species == LPSC
    assert model.cutoff_A == 4.0
    assert model.engine == architecture
    assert model.engine_version == VERSIONS[architecture], 'read from the log, not the code'
    assert model.filename == writer.model_filename
    content = (FIXTURES / architecture / 'default' / writer.model_filename).read_bytes()
    assert model.sha256 == hashlib.sha256(content).hexdigest()

    curve = results['learning_curve']
    x_name = 'step' if architecture == 'deepmd' else 'epoch'
    assert curve.base.attributes.get('x_axis') == x_name
    x = curve.get_array(x_name)
    for name in ('training_loss', 'validation_loss', 'validation_energy_rmse_meV_atom', 'validation_forces_rmse_meV_A'):
        values = curve.get_array(name)
        assert values.shape == x.shape
        assert np.isfinite(values).all()

    metrics = results['validation_metrics'].get_dict()
    assert metrics['architecture'] == architecture
    assert metrics['engine_version'] == VERSIONS[architecture]
    assert metrics['n_training_configurations'] == 24
    assert metrics['n_validation_configurations'] == 6
    assert metrics[f'n_{x_name}s'] == x[-1]
    for key in ('energy_rmse_meV_atom', 'forces_rmse_meV_A', 'stress_rmse_meV_A3'):
        assert math.isfinite(metrics[key])
        assert metrics[key] > 0


def test_mace_values(parse):
    """Learning curve from the JSON lines (per epoch), final errors from MACE's error table (deployed model)."""
    results, _ = parse('mace', 'mace/default')
    curve = results['learning_curve']
    assert curve.get_array('epoch').tolist() == [1, 2, 3, 4, 5]
    metrics = results['validation_metrics'].get_dict()
    assert metrics['energy_rmse_meV_atom'] == 26.9
    assert metrics['forces_rmse_meV_A'] == 89.3
    assert metrics['stress_rmse_meV_A3'] == 6.3
    assert 'error table' in metrics['metrics_source']
    assert results['model'].torch_version is None
    assert results['model'].target is None


def test_training_wall_time_from_the_jobs_clock(parse):
    """The job writes its start and end (s since the epoch) to the timing file: the wall time is the model's cost;
    without the file (runs from before it existed) the key is absent."""
    from aiida_mlffdiff.calculations.train import TIMING_FILE

    files = fixture_files('mace/default')
    files[TIMING_FILE] = b'1764779000.250000000\n1764779042.750000000\n'
    results, _ = parse('mace', files)
    assert results['validation_metrics']['training_wall_s'] == pytest.approx(42.5)
    results, _ = parse('mace', 'mace/default')
    assert 'training_wall_s' not in results['validation_metrics'].get_dict()


def test_nequip_values(parse):
    """Final errors are those of the best epoch (the compiled checkpoint), read from Lightning's metrics.csv."""
    results, _ = parse('nequip', 'nequip/default')
    rows = list(csv.DictReader((FIXTURES / 'nequip' / 'default' / 'metrics.csv').open()))
    validation = {int(r['epoch']): r for r in rows if r['val0_epoch/weighted_sum']}
    best = min(validation, key=lambda epoch: float(validation[epoch]['val0_epoch/weighted_sum']))
    metrics = results['validation_metrics'].get_dict()
    assert metrics['best_epoch'] == best + 1
    assert metrics['forces_rmse_meV_A'] == pytest.approx(1000 * float(validation[best]['val0_epoch/forces_rmse']))
    assert metrics['energy_rmse_meV_atom'] == pytest.approx(
        1000 * float(validation[best]['val0_epoch/per_atom_energy_rmse'])
    )
    model = results['model']
    assert model.target == 'ase'
    assert model.torch_version == '2.13.0+cpu'
    assert results['learning_curve'].get_array('learning_rate').tolist() == [0.01] * 5


def test_deepmd_values(parse):
    """Learning curve from lcurve.out (per displayed step), final errors from dp test on the validation set."""
    results, _ = parse('deepmd', 'deepmd/default')
    curve = results['learning_curve']
    assert curve.get_array('step').tolist() == [1, *range(10, 101, 10)]
    assert curve.get_array('validation_forces_rmse_meV_A')[-1] == pytest.approx(23.9)
    metrics = results['validation_metrics'].get_dict()
    assert metrics['energy_rmse_meV_atom'] == pytest.approx(59.55381)
    assert metrics['forces_rmse_meV_A'] == pytest.approx(84.73073)
    assert metrics['stress_rmse_meV_A3'] == pytest.approx(10.74228)
    assert metrics['final_validation_loss'] == pytest.approx(0.477)
    assert 'dp test' in metrics['metrics_source']
    assert results['model'].torch_version == '2.11.0+cu130'


@pytest.mark.parametrize('architecture', ['mace', 'nequip', 'deepmd'])
def test_nan_loss(architecture, parse):
    """A diverged run: exit 320 and no model (MACE and nequip-compile still wrote a model file)."""
    results, calcfunction = parse(architecture, f'{architecture}/nan_loss')
    assert calcfunction.exit_status == EXIT_CODES.ERROR_LOSS_NOT_FINITE.status
    assert 'model' not in results
    assert 'validation_metrics' not in results
    if architecture == 'deepmd':
        assert 'NaN detected at batch' in calcfunction.exit_message
        assert 'learning_curve' not in results, 'dp stopped before writing a line of lcurve.out'
    else:
        assert 'training_loss is nan at epoch 1' in calcfunction.exit_message
        assert np.isnan(results['learning_curve'].get_array('training_loss')).all()


def test_nequip_compile_failed(parse):
    """Training completed, nequip-compile raised (and left a .pt2 behind): exit 330, no model."""
    results, calcfunction = parse('nequip', 'nequip/compile_failed')
    assert calcfunction.exit_status == EXIT_CODES.ERROR_COMPILE_FAILED.status
    assert 'nequip-compile: RuntimeError: rtol must be greater than or equal to zero' in calcfunction.exit_message
    assert 'model' not in results
    assert 'learning_curve' in results


def test_deepmd_freeze_failed(parse):
    files = fixture_files('deepmd/default')
    del files['model.pth']
    files['dp-freeze.err'] = (
        b'Traceback (most recent call last):\n  File "x"\nOSError: [Errno 28] No space left on device\n'
    )
    _, calcfunction = parse('deepmd', files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_COMPILE_FAILED.status
    assert 'dp freeze: OSError: [Errno 28] No space left on device' in calcfunction.exit_message


@pytest.mark.parametrize(('architecture', 'filename'), [('mace', 'mlff_compiled.model'), ('deepmd', 'model.pth')])
def test_model_missing(architecture, filename, parse):
    """Logs say success but the model file was not retrieved: exit 310, no model."""
    files = fixture_files(f'{architecture}/default')
    del files[filename]
    results, calcfunction = parse(architecture, files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_MODEL_MISSING.status
    assert filename in calcfunction.exit_message
    assert 'model' not in results


@pytest.mark.parametrize(
    ('architecture', 'keep', 'message'),
    [
        ('mace', ['mace.err', '_scheduler-stderr.txt'], 'the MACE learning curve'),
        ('nequip', ['nequip-train.err'], r'the learning curve \(csv_log/metrics.csv\)'),
        ('deepmd', ['dp-train.err'], r'the learning curve \(lcurve.out\)'),
    ],
)
def test_missing_output(architecture, keep, message, parse):
    files = {name: data for name, data in fixture_files(f'{architecture}/default').items() if name in keep}
    if architecture == 'deepmd':
        files['dp-train.err'] = b'Traceback (most recent call last):\nMemoryError\n'
    _, calcfunction = parse(architecture, files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_MISSING_OUTPUT.status
    assert re.search(message, calcfunction.exit_message)


def test_training_incomplete(parse):
    """The job died mid-training (log without 'Training complete'): exit 340 with the error, curve kept."""
    files = fixture_files('mace/default')
    log = files['mlff_run-1.log'].decode()
    files['mlff_run-1.log'] = log[: log.index('Epoch 2:')].encode()
    files['mace.out'] = files['mlff_run-1.log']
    results_lines = files['mlff_run-1_train.txt'].decode().splitlines()
    files['mlff_run-1_train.txt'] = '\n'.join(results_lines[:12]).encode()
    del files['mlff_compiled.model']
    files['mace.err'] += b'Traceback (most recent call last):\n  File "x"\nKeyboardInterrupt\n'
    results, calcfunction = parse('mace', files)
    assert calcfunction.exit_status == EXIT_CODES.ERROR_TRAINING_INCOMPLETE.status
    assert 'mace_run_train: KeyboardInterrupt' in calcfunction.exit_message
    assert 'model' not in results
    assert len(results['learning_curve'].get_array('epoch')) >= 1


def test_walltime_from_scheduler(parse):
    """The scheduler reported the walltime (exit 120): kept, no model even if a model file was retrieved."""
    results, calcfunction = parse('nequip', 'nequip/default', exit_status=120)
    assert calcfunction.exit_status == TrainCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status
    assert 'model' not in results


def test_engine_version_from_code_when_log_lacks_it(parse):
    files = fixture_files('mace/default')
    for name in ('mlff_run-1.log', 'mace.out'):
        files[name] = b'\n'.join(line for line in files[name].splitlines() if b'MACE version' not in line)
    results, calcfunction = parse('mace', files)
    assert calcfunction.is_finished_ok
    assert results['model'].engine_version == '0.3.16-from-code'


def test_identical_model_gets_its_own_node(parse):
    """A second run with a byte-identical model: its own node (one creator per node), same checksum."""
    first, _ = parse('deepmd', 'deepmd/default', store=True)
    second, calcfunction = parse('deepmd', 'deepmd/default', store=True)
    assert calcfunction.is_finished_ok
    assert first['model'].pk != second['model'].pk
    assert first['model'].sha256 == second['model'].sha256


# ------------------------------------------------------------------------------------------------ the log readers
def test_last_error_is_cut():
    text = 'Traceback (most recent call last):\n  File "a.py"\nAssertionError: ' + 'x' * 1000 + '\n'
    message = last_error(text)
    assert message.startswith('AssertionError: xxx')
    assert len(message) == 300
    assert last_error('all fine\n') is None
    assert last_error(None) is None


def test_nequip_reader_places_learning_rate_rows():
    """LearningRateMonitor rows have a step but no epoch: they land in the epoch that contains the step."""
    metrics = (
        'epoch,step,lr-Adam,train_loss_epoch/weighted_sum,val0_epoch/weighted_sum,val0_epoch/forces_rmse,'
        'val0_epoch/per_atom_energy_rmse\n'
        ',0,0.01,,,,\n'
        '0,0,,,,,\n'
        '0,1,,,0.5,0.2,0.01\n'
        '0,1,,0.7,,,\n'
        ',2,0.005,,,,\n'
        '1,2,,,,,\n'
        '1,3,,,0.4,0.1,0.02\n'
        '1,3,,0.6,,,\n'
    )
    record = read_nequip({'metrics.csv': metrics, 'nequip-train.out': '... TRAIN RUN END'})
    assert record.x.tolist() == [1, 2]
    assert record.curves['learning_rate'].tolist() == [0.01, 0.005]
    assert record.curves['training_loss'].tolist() == [0.7, 0.6]
    assert record.curves['validation_forces_rmse_meV_A'].tolist() == [200.0, 100.0]
    assert record.final['forces_rmse_meV_A'] == 100.0
    assert record.extra == {'best_epoch': 2}
    assert record.completed
    assert record.postprocessed is False, 'no nequip-compile output'


def test_deepmd_reader_ignores_missing_virial_columns():
    """DeePMD prints nan for quantities without reference data (no virials): that is not a divergence."""
    lcurve = (
        '# step rmse_val rmse_trn rmse_e_val rmse_e_trn rmse_f_val rmse_f_trn rmse_v_val rmse_v_trn lr\n'
        '      1 1.0e+00 2.0e+00 1.0e-02 2.0e-02 1.0e-01 2.0e-01 nan nan 1.0e-03\n'
        '     10 5.0e-01 6.0e-01 5.0e-03 6.0e-03 5.0e-02 6.0e-02 nan nan 9.0e-04\n'
    )
    record = read_deepmd({'lcurve.out': lcurve, 'dp-train.err': 'Trained model has been saved to: model.ckpt'})
    assert record.not_finite == []
    assert record.x.tolist() == [1, 10]
    assert record.final == {'energy_rmse_meV_atom': 5.0, 'forces_rmse_meV_A': 50.0}
    assert 'lcurve' in record.final_source
