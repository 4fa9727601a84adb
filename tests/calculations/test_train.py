"""``TrainCalculation``: files, command lines, threads and retrieve list per architecture; submission-time errors;
one real training run per architecture (marked ``engines``)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import yaml
from aiida import orm
from aiida.common import CodeRunMode
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_mlffdiff.calculations.train import THREAD_ENVIRONMENT, TIMING_FILE, TrainCalculation
from aiida_mlffdiff.calculations.writers import WRITERS, get_protocol_parameters, get_writer, load_protocols

LPSC = ['Cl', 'Li', 'P', 'S']
EXECUTABLES = {'mace': 'mace_run_train', 'nequip': 'nequip-train', 'deepmd': 'dp'}


@pytest.fixture
def training_code(aiida_code_installed):
    """``training_code(name)``: an InstalledCode standing for an engine executable (never run)."""

    def factory(executable: str, computer=None):
        options = {'computer': computer} if computer is not None else {}
        return aiida_code_installed(
            label=f'{executable}-test', filepath_executable=f'/opt/envs/engine/bin/{executable}', **options
        )

    return factory


@pytest.fixture
def train_inputs(make_training_set, training_code):
    """``train_inputs(architecture, parameters=None, **extra)``: a complete input dictionary (fast protocol)."""
    sets = {}

    def factory(architecture: str, parameters: dict | None = None, **extra):
        if not sets:
            sets['training'] = make_training_set(n=12, seed=1)
            sets['validation'] = make_training_set(n=4, seed=2)
        inputs = {
            'code': training_code(EXECUTABLES.get(architecture, 'train')),
            'architecture': orm.Str(architecture),
            'training_set': sets['training'],
            'validation_set': sets['validation'],
            'parameters': orm.Dict(get_protocol_parameters(architecture, 'fast') if parameters is None else parameters),
            'seed': orm.Int(7),
        }
        if architecture == 'nequip':
            inputs['compile_code'] = training_code('nequip-compile')
        inputs.update(extra)
        return inputs

    return factory


def prepare(folder_path: pathlib.Path, **inputs):
    """Instantiate the process (runs the input validation) and call ``prepare_for_submission``."""
    process = instantiate_process(get_manager().get_runner(), TrainCalculation, **inputs)
    folder_path.mkdir(parents=True, exist_ok=True)
    return process, process.prepare_for_submission(Folder(str(folder_path)))


def text_files(folder: pathlib.Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in folder.rglob('*')
        if p.is_file() and p.suffix in ('.xyz', '.yaml', '.json', '.raw')
    }


@pytest.mark.parametrize('architecture', sorted(WRITERS))
def test_prepare_common(architecture, train_inputs, tmp_path):
    """Every architecture: serial programs, no MPI, one thread, model in the retrieve list, no local paths."""
    inputs = train_inputs(architecture)
    process, calcinfo = prepare(tmp_path / 'sandbox', **inputs)
    writer = get_writer(architecture)

    assert calcinfo.codes_run_mode == CodeRunMode.SERIAL
    assert all(codeinfo.withmpi is False for codeinfo in calcinfo.codes_info)
    assert writer.model_filename in calcinfo.retrieve_list
    options = process.node.get_options()
    assert options['withmpi'] is False
    assert options['resources'] == {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    assert options['environment_variables'] == THREAD_ENVIRONMENT
    assert options['parser_name'] == 'mlffdiff.train'
    # the defaults set every thread variable already; the job adds only its own torch-inductor cache and its clock
    assert calcinfo.prepend_text.splitlines() == [
        'export TORCHINDUCTOR_CACHE_DIR="$PWD/torchinductor_cache"',
        f'date +%s.%N > {TIMING_FILE}',
    ]
    assert calcinfo.append_text == f'date +%s.%N >> {TIMING_FILE}'
    assert TIMING_FILE in calcinfo.retrieve_list
    for codeinfo in calcinfo.codes_info:
        assert not any(arg.startswith('/') for arg in codeinfo.cmdline_params), 'nothing may point at a local path'
        assert codeinfo.stdout_name in calcinfo.retrieve_list
        assert codeinfo.stderr_name in calcinfo.retrieve_list
    for name, content in text_files(tmp_path / 'sandbox').items():
        assert str(tmp_path) not in content, f'{name} refers to the submitting machine'


def test_prepare_mace(train_inputs, tmp_path):
    inputs = train_inputs('mace')
    _, calcinfo = prepare(tmp_path, **inputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['train.xyz', 'valid.xyz']
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.code_uuid == inputs['code'].uuid
    args = codeinfo.cmdline_params
    options = {flag: args[i + 1] for i, flag in enumerate(args[:-1]) if flag.startswith('--')}
    assert options['--name'] == 'mlff'
    assert options['--seed'] == '7'
    assert options['--device'] == 'cpu'
    assert options['--default_dtype'] == 'float32'
    assert options['--E0s'] == 'average'
    assert options['--atomic_numbers'] == '[3, 15, 16, 17]'
    assert options['--train_file'] == 'train.xyz'
    assert options['--valid_file'] == 'valid.xyz'
    assert options['--energy_key'] == 'REF_energy'
    assert options['--forces_key'] == 'REF_forces'
    assert options['--stress_key'] == 'REF_stress'
    assert options['--r_max'] == '4.0'
    assert options['--max_num_epochs'] == '5'
    assert options['--loss'] == 'stress', 'LJ data have a stress: train on it'
    assert options['--compute_stress'] == 'True'
    assert options['--num_workers'] == '0'
    assert '--ema' not in args, 'the fast protocol switches EMA off'
    assert sorted(calcinfo.retrieve_list) == sorted(
        [
            'mace.out',
            'mace.err',
            'logs/mlff_run-7.log',
            'results/mlff_run-7_train.txt',
            'mlff_compiled.model',
            TIMING_FILE,
        ]
    )
    first = (tmp_path / 'train.xyz').read_text().splitlines()[1]
    assert 'REF_energy=' in first
    assert 'REF_stress=' in first
    assert 'REF_forces:R:3' in first


def test_prepare_mace_without_stress_and_explicit_e0s(train_inputs, tmp_path):
    parameters = get_protocol_parameters(
        'mace', 'fast', {'stress_weight': 0.0, 'e0s': {'Li': -1.5, 'Cl': -2.0, 'P': -3.0, 'S': -4.0}, 'ema': True}
    )
    _, calcinfo = prepare(tmp_path, **train_inputs('mace', parameters))
    args = calcinfo.codes_info[0].cmdline_params
    assert args[args.index('--loss') + 1] == 'weighted'
    assert args[args.index('--compute_stress') + 1] == 'False'
    assert '--stress_weight' not in args
    assert args[args.index('--E0s') + 1] == '{3: -1.5, 15: -3.0, 16: -4.0, 17: -2.0}'
    assert args[args.index('--ema') + 1] == '--ema_decay'


def test_prepare_nequip(train_inputs, tmp_path):
    inputs = train_inputs('nequip')
    _, calcinfo = prepare(tmp_path, **inputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['config.yaml', 'train.xyz', 'valid.xyz']
    train, compile_ = calcinfo.codes_info
    assert train.code_uuid == inputs['code'].uuid
    assert train.cmdline_params == ['-cd', '.', '-cn', 'config.yaml']
    assert compile_.code_uuid == inputs['compile_code'].uuid
    assert compile_.cmdline_params == [
        'best.ckpt',
        'model.nequip.pt2',
        '--mode',
        'aotinductor',
        '--device',
        'cpu',
        '--target',
        'ase',
    ]
    assert (train.stdout_name, compile_.stdout_name) == ('nequip-train.out', 'nequip-compile.out')
    assert 'csv_log/metrics.csv' in calcinfo.retrieve_list

    config = yaml.safe_load((tmp_path / 'config.yaml').read_text())
    assert config['trainer']['check_val_every_n_epoch'] == 1, 'engine facts: less often corrupts EMA'
    assert config['trainer']['max_epochs'] == 5
    assert config['hydra']['run']['dir'] == '.'
    assert config['seed'] == 7
    model = config['training_module']['model']
    assert model['type_names'] == LPSC
    assert model['r_max'] == 4.0
    assert model['num_layers'] == 1
    assert model['model_dtype'] == 'float32'
    assert config['data']['key_mapping'] == {
        'REF_energy': 'total_energy',
        'REF_forces': 'forces',
        'REF_stress': 'stress',
    }
    assert config['training_module']['loss']['_target_'] == 'nequip.train.EnergyForceStressLoss'
    assert config['data']['train_file_path'] == 'train.xyz'
    assert '&' not in (tmp_path / 'config.yaml').read_text(), 'no YAML anchors: the config is meant to be read'


def test_prepare_deepmd(train_inputs, tmp_path):
    inputs = train_inputs('deepmd')
    _, calcinfo = prepare(tmp_path, **inputs)
    train, freeze, test = calcinfo.codes_info
    assert {train.code_uuid, freeze.code_uuid, test.code_uuid} == {inputs['code'].uuid}
    assert train.cmdline_params == ['--pt', 'train', 'input.json']
    assert freeze.cmdline_params == ['--pt', 'freeze', '-o', 'model.pth']
    assert test.cmdline_params == ['--pt', 'test', '-m', 'model.pth', '--valid-data', 'input.json', '-n', '0']
    assert 'lcurve.out' in calcinfo.retrieve_list

    content = json.loads((tmp_path / 'input.json').read_text())
    assert content['model']['type_map'] == LPSC
    assert content['model']['descriptor']['type'] == 'se_e2_a'
    assert 'attn_layer' not in content['model']['descriptor']
    assert content['model']['descriptor']['rcut'] == 4.0
    assert content['model']['descriptor']['seed'] == 7
    assert content['training']['seed'] == 7
    assert content['training']['numb_steps'] == 100
    assert content['loss']['limit_pref_v'] > 0, 'LJ data have a stress: train on the virial'
    for key in ('training_data', 'validation_data'):
        systems = content['training'][key]['systems']
        assert systems
        for system in systems:
            assert not system.startswith('/')
            assert (tmp_path / system / 'set.000' / 'energy.npy').is_file()
            assert (tmp_path / system / 'type_map.raw').read_text().split() == LPSC
    frames = sum(
        np.load(tmp_path / s / 'set.000' / 'energy.npy').size for s in content['training']['training_data']['systems']
    )
    assert frames == 12


def test_deepmd_type_embedding_descriptor(train_inputs, tmp_path):
    """se_atten_v2 gets its attention depth and type-embedding length; the shared keys stay."""
    parameters = get_protocol_parameters('deepmd', 'fast', {'descriptor': 'se_atten_v2', 'type_embedding_dim': 4})
    prepare(tmp_path, **train_inputs('deepmd', parameters))
    descriptor = json.loads((tmp_path / 'input.json').read_text())['model']['descriptor']
    assert descriptor['type'] == 'se_atten_v2'
    assert descriptor['attn_layer'] == 0
    assert descriptor['tebd_dim'] == 4
    assert descriptor['rcut'] == 4.0
    assert descriptor['neuron'] == parameters['descriptor_neurons']


def test_deepmd_explicit_type_map_order(train_inputs, tmp_path):
    parameters = get_protocol_parameters('deepmd', 'fast', {'type_map': ['Li', 'P', 'S', 'Cl', 'O']})
    prepare(tmp_path, **train_inputs('deepmd', parameters))
    assert json.loads((tmp_path / 'input.json').read_text())['model']['type_map'] == ['Li', 'P', 'S', 'Cl', 'O']


def test_user_environment_keeps_one_thread(train_inputs, tmp_path):
    """Replacing environment_variables keeps one thread for every variable not named there."""
    inputs = train_inputs('deepmd', metadata={'options': {'environment_variables': {'OMP_NUM_THREADS': '2'}}})
    _, calcinfo = prepare(tmp_path, **inputs)
    lines = [line for line in calcinfo.prepend_text.splitlines() if line.startswith('export ')]
    exports = dict(line.removeprefix('export ').split('=') for line in lines)
    assert 'OMP_NUM_THREADS' not in exports
    assert exports['DP_INTRA_OP_PARALLELISM_THREADS'] == '1'
    assert exports['NUM_WORKERS'] == '0'


def test_code_on_a_remote_computer(train_inputs, training_code, aiida_computer_ssh, tmp_path):
    """Preparing needs no connection to the computer and nothing refers to the submitting machine."""
    remote = aiida_computer_ssh(label='cluster', configure=False)
    inputs = train_inputs(
        'nequip',
        code=training_code('nequip-train', computer=remote),
        compile_code=training_code('nequip-compile', computer=remote),
    )
    _, calcinfo = prepare(tmp_path / 'sandbox', **inputs)
    assert calcinfo.local_copy_list == []
    assert calcinfo.remote_copy_list == []


def test_dry_run_submit_script(train_inputs):
    """The submit script exports the thread variables and runs the two NequIP programs one after the other."""
    inputs = train_inputs('nequip', metadata={'dry_run': True, 'store_provenance': False})
    _, node = run_get_node(TrainCalculation, **inputs)
    script = (pathlib.Path(node.dry_run_info['folder']) / '_aiidasubmit.sh').read_text()
    assert "export OMP_NUM_THREADS='1'" in script or 'export OMP_NUM_THREADS=1' in script
    assert 'DP_INTRA_OP_PARALLELISM_THREADS' in script
    train = script.index("'/opt/envs/engine/bin/nequip-train' '-cd' '.' '-cn' 'config.yaml'")
    compile_ = script.index("'/opt/envs/engine/bin/nequip-compile' 'best.ckpt' 'model.nequip.pt2'")
    assert train < compile_
    assert 'mpirun' not in script


# ------------------------------------------------------------------------------------- submission-time validation
@pytest.mark.parametrize(
    ('architecture', 'parameters', 'message'),
    [
        ('mace', {'max_epoch': 5}, r'unknown key\(s\) max_epoch \(accepted: .*max_epochs'),
        ('mace', {'max_epochs': 'five'}, "max_epochs must be int, got 'five'"),
        ('mace', {'max_epochs': 2.5}, 'max_epochs must be int'),
        ('mace', {'ema': 1}, 'ema must be bool'),
        ('mace', {'max_L': 4}, 'max_L must be 0, 1, 2 or 3'),
        ('mace', {'e0s': 'isolated'}, "e0s must be 'average'"),
        ('mace', {'species': ['Li', 'P', 'S']}, r"species \['Li', 'P', 'S'\] does not cover Cl"),
        ('nequip', {'learning_rate': -1.0}, 'learning_rate must be positive'),
        ('nequip', {'dtype': 'float16'}, 'dtype must be float32 or float64'),
        ('nequip', {'compile_target': 'lammps'}, 'compile_target must be one of ase, batch, pair_nequip'),
        ('deepmd', {'type_map': ['Li', 'P', 'S']}, r"type_map \['Li', 'P', 'S'\] does not cover Cl"),
        ('deepmd', {'type_map': ['Li', 'Li']}, 'type_map must not repeat a symbol'),
        ('deepmd', {'stop_learning_rate': 1.0}, r'stop_learning_rate \(1.0\) exceeds learning_rate'),
        ('deepmd', {'sel': 'many'}, "sel must be 'auto'"),
        ('deepmd', {'descriptor_neurons': [4, 0]}, 'descriptor_neurons must be a non-empty list of positive'),
        ('deepmd', {'descriptor': 'dpa3'}, 'descriptor must be one of se_e2_a, se_atten_v2'),
        ('deepmd', {'attention_layers': 1}, "attention_layers needs descriptor 'se_atten_v2'"),
    ],
)
def test_invalid_parameters_rejected_at_submission(architecture, parameters, message, train_inputs):
    with pytest.raises(ValueError, match=message):
        instantiate_process(get_manager().get_runner(), TrainCalculation, **train_inputs(architecture, parameters))


def test_several_problems_in_one_message(train_inputs):
    parameters = {'max_epochs': 'x', 'colour': 'blue', 'batch_size': 0}
    with pytest.raises(ValueError, match='unknown key') as info:
        instantiate_process(get_manager().get_runner(), TrainCalculation, **train_inputs('mace', parameters))
    assert 'max_epochs must be int' in str(info.value)
    assert 'batch_size must be at least 1' in str(info.value)


def test_unknown_architecture(train_inputs):
    inputs = train_inputs('mace', parameters={})
    inputs['architecture'] = orm.Str('schnet')
    with pytest.raises(ValueError, match="unknown architecture 'schnet': accepted are deepmd, mace, nequip"):
        instantiate_process(get_manager().get_runner(), TrainCalculation, **inputs)


def test_nequip_needs_compile_code(train_inputs):
    inputs = train_inputs('nequip')
    del inputs['compile_code']
    with pytest.raises(ValueError, match='architecture nequip needs compile_code'):
        instantiate_process(get_manager().get_runner(), TrainCalculation, **inputs)


def test_a_code_of_another_engine_is_refused(train_inputs, aiida_localhost):
    """pw.x (extra mlffdiff_engine 'qe', as `aiida-mlffdiff setup` registers it) given as MACE's training code."""
    pw = orm.InstalledCode(label='pw-for-mace', computer=aiida_localhost, filepath_executable='/bin/true')
    pw.base.extras.set('mlffdiff_engine', 'qe')
    with pytest.raises(ValueError, match=r"code pw-for-mace@.* belongs to the 'qe' environment, but mace trains in"):
        instantiate_process(get_manager().get_runner(), TrainCalculation, **train_inputs('mace', code=pw.store()))


def test_single_configuration_training_set_is_refused(train_inputs, make_training_set):
    one = make_training_set(n=1, seed=5)
    with pytest.raises(ValueError, match=r'holds 1 configuration\(s\): at least 2'):
        instantiate_process(get_manager().get_runner(), TrainCalculation, **train_inputs('mace', training_set=one))


def test_validation_species_outside_the_model(train_inputs, make_training_set, lj_configurations):
    """A validation set with a species the training set lacks is refused (the model would not know it)."""
    from ase.build import bulk

    from aiida_mlffdiff.data.training_set import TrainingSet

    atoms = bulk('Na', 'bcc', a=4.2, cubic=True)
    atoms.info['REF_energy'] = -1.0
    atoms.arrays['REF_forces'] = np.zeros((len(atoms), 3))
    extra = TrainingSet.from_atoms([*lj_configurations(n=2), atoms], functional='lj-test').store()
    with pytest.raises(ValueError, match='does not cover Na'):
        instantiate_process(get_manager().get_runner(), TrainCalculation, **train_inputs('mace', validation_set=extra))


def test_parameters_optional(train_inputs, tmp_path):
    """Without parameters every default applies (validated like the rest)."""
    inputs = train_inputs('deepmd')
    del inputs['parameters']
    prepare(tmp_path, **inputs)
    content = json.loads((tmp_path / 'input.json').read_text())
    assert content['training']['numb_steps'] == WRITERS['deepmd'].defaults()['num_steps']


# ------------------------------------------------------------------------------------------------------ protocols
def test_protocols_valid_and_ordered():
    """Every protocol of every architecture passes its schema; models grow from fast to precise."""
    protocols = load_protocols()
    assert protocols['default_protocol'] == 'moderate'
    assert set(protocols['protocols']) == {'fast', 'moderate', 'precise'}
    assert all(set(entry) - {'description'} == set(WRITERS) for entry in protocols['protocols'].values())
    size = {'mace': 'num_channels', 'nequip': 'num_features', 'deepmd': 'fitting_neurons'}
    length = {'mace': 'max_epochs', 'nequip': 'max_epochs', 'deepmd': 'num_steps'}
    for architecture, writer in WRITERS.items():
        chosen = {
            p: writer.validate(get_protocol_parameters(architecture, p), LPSC, LPSC) for p in protocols['protocols']
        }
        assert chosen['fast'][length[architecture]] < chosen['moderate'][length[architecture]]
        assert chosen['moderate'][length[architecture]] < chosen['precise'][length[architecture]]
        assert chosen['fast'][size[architecture]] < chosen['precise'][size[architecture]]
        assert chosen['fast']['dtype'] == 'float32'
        assert chosen['precise']['dtype'] == 'float64'


def test_protocol_overrides_and_errors():
    assert get_protocol_parameters('mace', 'fast', {'max_epochs': 2})['max_epochs'] == 2
    assert TrainCalculation.get_protocol_parameters('nequip')['num_layers'] == 2, 'default protocol: moderate'
    with pytest.raises(ValueError, match="unknown protocol 'slow'"):
        get_protocol_parameters('mace', 'slow')
    with pytest.raises(ValueError, match='unknown key'):
        get_protocol_parameters('mace', 'fast', {'epochs': 2})
    with pytest.raises(ValueError, match="unknown architecture 'allegro'"):
        get_protocol_parameters('allegro', 'fast')


def test_schemas_document_units():
    """Every option has a help text; lengths, energies and learning rates say what they are."""
    for writer in WRITERS.values():
        text = writer.describe()
        assert 'cutoff_A' in text
        assert '(Å)' in text
        for option in writer.schema.values():
            assert option.help
