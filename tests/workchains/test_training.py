"""TrainingWorkChain and its restart wrapper: protocol builder, restart handlers, and a real run via the daemon."""

import math

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_mlffdiff.calculations.writers import LEARNING_RATE_KEY
from aiida_mlffdiff.data import TrainingSet
from aiida_mlffdiff.workchains.training import TrainBaseWorkChain, TrainingWorkChain
from tests.calculations.training_checks import check_trained


@pytest.fixture
def mace_codes(aiida_localhost):
    """Unstored-environment codes are enough for builders and handlers (nothing runs)."""

    def code(label):
        return orm.InstalledCode(label=label, computer=aiida_localhost, filepath_executable=f'/usr/bin/{label}').store()

    return code('mace_run_train'), code('python-mace')


def test_builder_from_protocol(make_training_set, mace_codes):
    training_set = make_training_set(n=12)
    builder = TrainingWorkChain.get_builder_from_protocol(*mace_codes, training_set, 'mace', protocol='fast', seed=3)
    assert builder.train.train.architecture.value == 'mace'
    assert builder.train.train.parameters[LEARNING_RATE_KEY] > 0
    assert builder.split_parameters['seed'] == 3
    override = TrainingWorkChain.get_builder_from_protocol(
        *mace_codes, training_set, 'mace', protocol='fast', overrides={LEARNING_RATE_KEY: 1e-4}
    )
    assert override.train.train.parameters[LEARNING_RATE_KEY] == 1e-4


@pytest.mark.parametrize(
    ('architecture', 'protocol', 'message'),
    [('schnet', 'fast', 'unknown architecture'), ('mace', 'sloppy', 'unknown protocol')],
)
def test_builder_refuses_unknown_names(make_training_set, mace_codes, architecture, protocol, message):
    with pytest.raises(ValueError, match=message):
        TrainingWorkChain.get_builder_from_protocol(
            *mace_codes, make_training_set(n=6), architecture, protocol=protocol
        )


def failed_child(exit_status: int) -> orm.CalcJobNode:
    """A finished TrainCalculation node with ``exit_status``, as the handlers get it."""
    node = orm.CalcJobNode(process_type='aiida.calculations:mlffdiff.train')
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    node.set_option('max_wallclock_seconds', 1000)
    return node.store()


@pytest.fixture
def restart_chain(make_training_set, mace_codes):
    """A TrainBaseWorkChain instance after ``setup``, for calling its handlers directly."""
    training_set = make_training_set(n=12)
    builder = TrainingWorkChain.get_builder_from_protocol(*mace_codes, training_set, 'mace', protocol='fast')
    inputs = dict(builder.train)
    inputs['train'] = dict(builder.train.train)
    inputs['train']['training_set'] = training_set
    inputs['train']['validation_set'] = training_set
    inputs['train']['metadata'] = {'options': {'max_wallclock_seconds': 1000}}
    process = instantiate_process(get_manager().get_runner(), TrainBaseWorkChain, **inputs)
    process.setup()
    return process


def test_non_finite_loss_halves_the_learning_rate(restart_chain):
    before = restart_chain.ctx.inputs.parameters[LEARNING_RATE_KEY]
    report = restart_chain.handle_non_finite_loss(failed_child(320))
    assert report.do_break
    assert report.exit_code is None or report.exit_code.status == 0
    assert restart_chain.ctx.inputs.parameters[LEARNING_RATE_KEY] == pytest.approx(before / 2)


def test_walltime_is_raised_then_capped(restart_chain, monkeypatch):
    report = restart_chain.handle_out_of_walltime(failed_child(120))
    assert report.do_break
    assert restart_chain.ctx.inputs.metadata['options']['max_wallclock_seconds'] == 1500
    monkeypatch.setattr('aiida_mlffdiff.workchains.restart.MAX_WALLTIME_S', 1500)
    capped = restart_chain.handle_out_of_walltime(failed_child(120))
    assert capped.exit_code.status == TrainBaseWorkChain.exit_codes.ERROR_UNHANDLED_FAILURE.status


@pytest.mark.engines
@pytest.mark.daemon
def test_mace_training_through_the_daemon(make_training_set, engine_code, submit_and_await, capsys):
    """One full chain through ``submit`` and the daemon: split → train (MACE, fast) → evaluate on the test set."""
    training_set = make_training_set(n=30, seed=11)
    builder = TrainingWorkChain.get_builder_from_protocol(
        engine_code('mace', 'train'), engine_code('mace', 'python'), training_set, 'mace', protocol='fast'
    )
    node = submit_and_await(builder, timeout=600)
    assert node.is_finished_ok, node.exit_message

    model = node.outputs.model
    check_trained(model.creator, 'mace')  # the TrainCalculation: model, validation metrics, learning curve
    assert model.species == training_set.species
    metrics = node.outputs.test_metrics.get_dict()
    assert math.isfinite(metrics['force_rmse_meV_A'])
    assert math.isfinite(metrics['energy_rmse_meV_atom'])
    assert set(node.outputs.split) == {'train', 'validation', 'test'}

    # Lineage: model ← TrainCalculation ← train part ← split_training_set ← the full TrainingSet.
    train_part = model.creator.inputs.training_set
    assert isinstance(train_part, TrainingSet)
    split_call = train_part.creator
    assert split_call.process_label == 'split_training_set'
    assert split_call.base.links.get_incoming(link_type=LinkType.INPUT_CALC).get_node_by_label('training_set').uuid == (
        training_set.uuid
    )
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert 'test-set errors' in report
    with capsys.disabled():
        seconds = (node.mtime - node.ctime).total_seconds()
        print(f'\nmace: chain {seconds:.0f} s (daemon), test force RMSE {metrics["force_rmse_meV_A"]:.0f} meV/Å')


@pytest.mark.engines
@pytest.mark.parametrize('architecture', ['nequip', 'deepmd'])
def test_training_chain_trains_and_evaluates(make_training_set, engine_code, architecture, record_property, capsys):
    """NequIP and DeePMD through the whole chain (run in-process): trained model evaluated in its environment.

    The chain's TrainCalculation is also the CalcJob's end-to-end test (one training per architecture)."""
    from time import perf_counter

    from aiida.engine import run_get_node

    codes = {'nequip': ('train', 'python'), 'deepmd': ('dp', 'python')}[architecture]
    training_set = make_training_set(n=30, seed=12)
    builder = TrainingWorkChain.get_builder_from_protocol(
        engine_code(architecture, codes[0]),
        engine_code(architecture, codes[1]),
        training_set,
        architecture,
        protocol='fast',
        compile_code=engine_code('nequip', 'compile') if architecture == 'nequip' else None,
    )
    started = perf_counter()
    _, node = run_get_node(builder)
    seconds = perf_counter() - started
    assert node.is_finished_ok, node.exit_message
    check_trained(node.outputs.model.creator, architecture)  # the TrainCalculation: model, metrics, curve
    metrics = node.outputs.test_metrics.get_dict()
    assert math.isfinite(metrics['force_rmse_meV_A'])
    record_property('wall_s', seconds)
    record_property('test_force_rmse_meV_A', metrics['force_rmse_meV_A'])
    with capsys.disabled():
        print(f'\n{architecture}: chain {seconds:.0f} s, test force RMSE {metrics["force_rmse_meV_A"]:.0f} meV/Å')
