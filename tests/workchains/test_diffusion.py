"""DiffusionWorkChain and MdEnsembleBaseWorkChain: protocol builder, validation, restart handlers, real runs."""

from __future__ import annotations

import time

import pytest
from aiida import orm
from aiida.engine import ProcessState, run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_mlffdiff.analysis import d_unresolved
from aiida_mlffdiff.calculations.md_ensemble import MdEnsembleCalculation
from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.workchains.diffusion import (
    MIN_TIMESTEP_FS,
    DiffusionWorkChain,
    MdEnsembleBaseWorkChain,
    nonpositive_warning,
    temperature_label,
    temperature_warning,
)

LPSC = ['Cl', 'Li', 'P', 'S']


@pytest.fixture
def stand_in_model(tmp_path):
    """A stored MlffModel whose file is only bytes (never run)."""
    path = tmp_path / 'model_compiled.model'
    path.write_bytes(b'mace stand-in')
    return MlffModel.from_file(path, architecture='mace', species=LPSC, cutoff_A=4.0, engine='mace').store()


@pytest.fixture
def python_code(aiida_localhost):
    return orm.InstalledCode(
        label='python-mace', computer=aiida_localhost, filepath_executable='/usr/bin/python3'
    ).store()


def test_builder_from_protocol(python_code, stand_in_model, lpsc_cell):
    builder = DiffusionWorkChain.get_builder_from_protocol(
        python_code, stand_in_model, lpsc_cell, [600, 900.0], protocol='fast'
    )
    assert builder.temperatures.get_list() == [600.0, 900.0]
    assert builder.replicas_per_batch.value == 2
    assert builder.max_replicas.value == 4
    parameters = builder.md.md.parameters.get_dict()
    assert parameters['production_ps'] == 1.0
    assert 'temperature_K' not in parameters
    assert 'seeds' not in parameters
    moderate = DiffusionWorkChain.get_builder_from_protocol(
        python_code,
        stand_in_model,
        lpsc_cell,
        [600],
        protocol='moderate',
        overrides={'max_replicas': 32, 'md': {'production_ps': 10.0}},
    )
    assert moderate.max_replicas.value == 32
    assert moderate.replicas_per_batch.value == 16
    assert moderate.md.md.parameters['production_ps'] == 10.0
    assert moderate.md.md.parameters['timestep_fs'] == 2.0
    precise = DiffusionWorkChain.get_builder_from_protocol(python_code, stand_in_model, lpsc_cell, [600], 'precise')
    assert precise.max_replicas.value == 300
    assert precise.target_relative_error.value == 0.01
    assert precise.md.md.parameters['production_ps'] == 70.0
    # The builder validates: a process can be instantiated from it.
    instantiate_process(get_manager().get_runner(), builder)


def test_builder_without_code_picks_the_registered_engine(stand_in_model, lpsc_cell):
    """``code=None``: md_engine_code looks up the codes ``aiida-mlffdiff setup`` registers on localhost."""
    from aiida.common.exceptions import NotExistent

    try:
        code = orm.load_code('mlffdiff-mace-python@localhost')
    except NotExistent:
        with pytest.raises(ValueError, match=r'mlffdiff-mace-python@localhost is not registered; run `aiida-mlffdiff'):
            DiffusionWorkChain.get_builder_from_protocol(None, stand_in_model, lpsc_cell, [600])
        return
    builder = DiffusionWorkChain.get_builder_from_protocol(None, stand_in_model, lpsc_cell, [600])
    assert builder.md.md.code.pk == code.pk  # MACE: ase is the measured default


@pytest.mark.parametrize(
    ('temperatures', 'protocol', 'overrides', 'message'),
    [
        ([600], 'sloppy', None, 'unknown protocol'),
        ([], 'fast', None, 'must not be empty'),
        ([600, 0], 'fast', None, 'must be positive'),
        ([600, -300], 'fast', None, 'must be positive'),
        ([600, 600], 'fast', None, 'must be distinct'),
        ([600], 'fast', {'md': {'temperature_K': 500.0}}, 'must not set temperature_K'),
        ([600], 'fast', {'replicas': 3}, 'unknown override'),
    ],
)
def test_builder_refuses(python_code, stand_in_model, lpsc_cell, temperatures, protocol, overrides, message):
    with pytest.raises(ValueError, match=message):
        DiffusionWorkChain.get_builder_from_protocol(
            python_code, stand_in_model, lpsc_cell, temperatures, protocol=protocol, overrides=overrides
        )


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'temperatures': []}, 'must not be empty'),
        ({'temperatures': [600.0, -1.0]}, 'must be positive'),
        ({'max_replicas': 1}, 'must be at least replicas_per_batch'),
        ({'target_relative_error': 0.0}, 'target_relative_error must be positive'),
        ({'md_parameters': {'seeds': [1, 2]}}, 'must not set seeds'),
        # Found by the probe of bad inputs: these ran all the MD (or excepted with a traceback) before.
        ({'md_parameters': {'timestep_fs': 50.0}}, 'timestep_fs 50 exceeds 5 fs'),
        ({'md_parameters': {'mobile_species': 'Na'}}, 'mobile_species Na is not in the structure'),
        ({'md_parameters': {'engine': 'torchsim', 'threads_per_worker': 0}}, 'threads_per_worker must be at least 1'),
        ({'non_periodic': True}, 'must be periodic in all three directions'),
        ({'workers': 0}, r'resources.num_mpiprocs_per_machine must be a positive integer \(workers\), got 0'),
        (
            {'diffusion_parameters': {'fit_start_ps': 0.2, 'fit_end_ps': 5.0}},
            'fit_end_ps 5 ps lies beyond the production',
        ),
        ({'diffusion_parameters': {'fit_star_ps': 0.2}}, r'unknown key\(s\) fit_star_ps'),
    ],
)
def test_spec_validation(python_code, stand_in_model, lpsc_cell, change, message):
    builder = DiffusionWorkChain.get_builder_from_protocol(python_code, stand_in_model, lpsc_cell, [600])
    with pytest.raises(ValueError, match=message):  # port validators fire on assignment, the others at launch
        change_and_launch(builder, change)


def change_and_launch(builder, change: dict) -> None:
    for key, value in change.items():
        if key == 'md_parameters':
            builder.md.md.parameters = orm.Dict({**builder.md.md.parameters.get_dict(), **value})
        elif key == 'non_periodic':
            structure = orm.StructureData(ase=builder.structure.get_ase())
            structure.pbc = (True, True, False)
            builder.structure = structure
        elif key == 'workers':
            builder.md.md.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': value}
        elif key == 'diffusion_parameters':
            builder.diffusion_parameters = orm.Dict(value)
        else:
            builder[key] = {'temperatures': orm.List, 'max_replicas': orm.Int}.get(key, orm.Float)(value)
    instantiate_process(get_manager().get_runner(), builder)


def test_a_model_whose_file_changed_is_refused_before_any_md(python_code, stand_in_model, lpsc_cell):
    """The probe's checksum case: the stored model file no longer matches its sha256 → refused at submission."""
    import os

    from ..data.test_mlff_model import loose_object_path

    builder = DiffusionWorkChain.get_builder_from_protocol(python_code, stand_in_model, lpsc_cell, [600])
    path = loose_object_path(stand_in_model.base.repository.get_object(stand_in_model.filename).key)
    os.chmod(path, 0o644)
    path.write_bytes(b'corrupted')
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match='the file was changed or corrupted'):
        instantiate_process(get_manager().get_runner(), builder)
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_temperature_label():
    assert temperature_label(600.0) == 'T_600K'
    assert temperature_label(612.5) == 'T_612p5K'


# ---------------------------------------------------------------------------------------------- restart handlers
def failed_child(exit_status: int) -> orm.CalcJobNode:
    node = orm.CalcJobNode(process_type='aiida.calculations:mlffdiff.md_ensemble')
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    node.set_option('max_wallclock_seconds', 1000)
    return node.store()


@pytest.fixture
def restart_chain(python_code, stand_in_model, lpsc_cell):
    """An MdEnsembleBaseWorkChain after ``setup``, for calling its handlers directly."""
    parameters = {'temperature_K': 600.0, 'production_ps': 1.0, 'timestep_fs': 1.0, 'n_replicas': 2, 'engine': 'ase'}
    inputs = {
        'md': {
            'code': python_code,
            'model': stand_in_model,
            'structure': lpsc_cell,
            'parameters': orm.Dict(parameters),
            'metadata': {'options': {'max_wallclock_seconds': 1000}},
        }
    }
    process = instantiate_process(get_manager().get_runner(), MdEnsembleBaseWorkChain, **inputs)
    process.setup()
    return process


@pytest.mark.parametrize('code', ['ERROR_TOO_MANY_FAILED_REPLICAS', 'ERROR_ALL_REPLICAS_FAILED'])
def test_failed_replicas_halve_the_timestep(restart_chain, code):
    status = MdEnsembleCalculation.exit_codes[code].status
    report = restart_chain.handle_failed_replicas(failed_child(status))
    assert report.do_break
    assert report.exit_code is None or report.exit_code.status == 0
    parameters = restart_chain.ctx.inputs.parameters.get_dict()
    assert parameters['timestep_fs'] == 0.5
    assert parameters['sampling_interval_fs'] == 10.0, 'the MSD time grid must not change'
    restart_chain.handle_failed_replicas(failed_child(status))
    assert restart_chain.ctx.inputs.parameters['timestep_fs'] == MIN_TIMESTEP_FS
    assert restart_chain.ctx.inputs.parameters['sampling_interval_fs'] == 10.0
    final = restart_chain.handle_failed_replicas(failed_child(status))
    assert final.exit_code.status == MdEnsembleBaseWorkChain.exit_codes.ERROR_REPLICAS_KEEP_FAILING.status
    assert restart_chain.ctx.inputs.parameters['timestep_fs'] == MIN_TIMESTEP_FS


def test_walltime_is_raised_then_capped(restart_chain, monkeypatch):
    report = restart_chain.handle_out_of_walltime(failed_child(120))
    assert report.do_break
    assert restart_chain.ctx.inputs.metadata['options']['max_wallclock_seconds'] == 1500
    monkeypatch.setattr('aiida_mlffdiff.workchains.restart.MAX_WALLTIME_S', 1500)
    capped = restart_chain.handle_out_of_walltime(failed_child(120))
    assert capped.exit_code.status == MdEnsembleBaseWorkChain.exit_codes.ERROR_UNHANDLED_FAILURE.status


# ------------------------------------------------------------------------------------------------------ real runs
TINY_MD = {'timestep_fs': 1.0, 'equilibration_ps': 0.1, 'production_ps': 1.0, 'sampling_interval_fs': 10.0}


def run_chain(engine_code, model, structure, temperatures, **overrides):
    builder = DiffusionWorkChain.get_builder_from_protocol(
        engine_code('mace', 'python'),
        model,
        structure,
        temperatures,
        protocol='fast',
        overrides={'md': TINY_MD, 'workers': 1, **overrides},
    )
    started = time.perf_counter()
    _, node = run_get_node(builder)
    return node, time.perf_counter() - started


def md_calculations(node) -> list[orm.CalcJobNode]:
    return [
        child
        for child in node.called_descendants
        if isinstance(child, orm.CalcJobNode) and child.process_type.endswith('mlffdiff.md_ensemble')
    ]


def report_of(node) -> str:
    return '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))


@pytest.mark.engines
def test_converges_in_one_round(engine_code, session_mace_model, lpsc_cell, capsys):
    node, wall = run_chain(
        engine_code, session_mace_model, lpsc_cell, [600, 900], target_relative_error=0.5, max_replicas=4
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message, report_of(node))
    summary = node.outputs.summary.get_dict()
    assert set(node.outputs.diffusion) == {'T_600K', 'T_900K'}
    for label, entry in summary['temperatures'].items():
        result = node.outputs.diffusion[label].get_dict()
        assert entry['converged'] is True
        assert entry['n_batches'] == 1
        # A replica may blow up with this tiny model (max_failed_fraction 0.5 tolerates one of two).
        assert entry['n_replicas'] == result['n_replicas'] in (1, 2)
        assert entry['D_cm2_s'] == result['D_cm2_s']
        assert entry['D_err_cm2_s'] == result['D_err_cm2_s']
        assert entry['relative_error'] == result['relative_error'] <= 0.5
        assert entry['simulated_time_ps'] == pytest.approx(entry['n_replicas'] * 1.0)
        # The chain adds its own warnings in front of the fit's: here at most the mean-temperature one (a tiny model).
        chain_warnings = entry['warnings'][: len(entry['warnings']) - len(result.get('warnings', []))]
        assert entry['warnings'][len(chain_warnings) :] == result.get('warnings', [])
        assert all('off the target' in warning for warning in chain_warnings), chain_warnings
        assert result['temperature_K'] == entry['temperature_K']
    assert summary['converged'] is True
    assert node.outputs.summary.creator.process_label == 'summarize_diffusion'
    arrhenius = node.outputs.arrhenius.get_dict()
    assert arrhenius['temperature_K'] == 300.0
    assert {'Ea_eV', 'D_at_T_cm2_s', 'sigma_at_T_mS_cm'} <= set(arrhenius)
    assert len(md_calculations(node)) == 2
    report = report_of(node)
    # a tiny model's D(T) may well be unresolved: the report then says so instead of printing a number
    d_600 = summary['temperatures']['T_600K']
    assert d_600['unresolved'] == d_unresolved(node.outputs.diffusion['T_600K'].get_dict())
    assert ('T_600K: D unresolved (' if d_600['unresolved'] else 'T_600K: D = ') in report
    assert set(arrhenius['unresolved']) == {'Ea', 'D_at_T', 'sigma_at_T'}
    assert ('Arrhenius: Ea unresolved (' if arrhenius['unresolved']['Ea'] else 'Arrhenius: Ea = ') in report
    with capsys.disabled():
        print(f'\nDiffusionWorkChain (2 T × 1 batch × 2 replicas × 1.1 ps, 8 atoms): {wall:.1f} s wall')


@pytest.mark.engines
@pytest.mark.daemon
@pytest.mark.parametrize('stop', ['graceful', 'kill -9'])
def test_daemon_restart_does_not_recompute_finished_batches(
    engine_code, session_mace_model, lpsc_cell, daemon_client, submit_and_await, stop
):
    """Stop the daemon once the first batch has finished (gracefully, or kill -9 of its arbiter, workers and ZeroMQ
    broker), start it again: the chain finishes, no finished batch is rerun, nothing stays Running/Waiting.

    The target (1e-6) cannot be met: the chain also stops at the replica cap (4 = two batches of 2), with a warning
    and without an Arrhenius fit (one chain for both checks: the MD is the expensive part).
    """
    from aiida.engine import submit

    builder = DiffusionWorkChain.get_builder_from_protocol(
        engine_code('mace', 'python'),
        session_mace_model,
        lpsc_cell,
        [700],
        protocol='fast',
        overrides={'md': TINY_MD, 'workers': 1, 'target_relative_error': 1e-6, 'max_replicas': 4},
    )
    if not daemon_client.is_daemon_running:
        daemon_client.start_daemon()
    node = submit(builder)
    deadline = time.time() + 600
    while not any(calc.is_finished for calc in md_calculations(node)):
        assert time.time() < deadline, report_of(node)
        assert not node.is_terminated, (node.exit_status, report_of(node))
        time.sleep(1)
    if stop == 'graceful':
        daemon_client.stop_daemon(wait=True)
    else:
        import psutil

        arbiter = psutil.Process(daemon_client.get_daemon_pid())
        victims = [arbiter, *arbiter.children(recursive=True)]
        for process in victims:
            process.kill()  # SIGKILL: no clean-up, the tasks stay unacknowledged in the broker
        psutil.wait_procs(victims, timeout=10)
    first = [calc.pk for calc in md_calculations(node) if calc.is_finished]
    assert not node.is_terminated
    daemon_client.start_daemon()
    node = submit_and_await(node, timeout=600)  # waits for the chain, picked up again by the new daemon
    assert node.is_finished_ok, (node.exit_status, node.exit_message, report_of(node))
    calculations = md_calculations(node)
    assert len(calculations) == 2, 'a finished batch must never be recomputed'
    assert {calc.pk for calc in calculations} >= set(first)
    assert all(calc.is_terminated for calc in calculations)
    seeds = sorted(seed for calc in calculations for seed in calc.inputs.parameters['seeds'])
    assert seeds == [0, 1, 1000, 1001]
    entry = node.outputs.summary['temperatures']['T_700K']
    assert entry['n_batches'] == 2
    assert entry['converged'] is False
    assert 2 <= entry['n_replicas'] <= 4  # at most one replica per batch may blow up
    assert any('replica cap of 4 reached' in warning for warning in entry['warnings'])
    assert node.outputs.summary['converged'] is False
    assert 'arrhenius' not in node.outputs
    assert 'no Arrhenius fit' in report_of(node)


def test_temperature_warning_for_hot_replicas():
    """Hot beyond 5 % and beyond 3 standard errors warns; noise or a small offset does not."""
    hot = temperature_warning('T700K', 700.0, [832.0, 845.0, 820.0])
    assert hot is not None
    assert 'mean 832 K' in hot
    assert '+19 %' in hot
    assert 'smaller timestep' in hot
    assert temperature_warning('T700K', 700.0, [710.0, 690.0, 725.0]) is None  # within 5 %
    assert temperature_warning('T700K', 700.0, [600.0, 1000.0]) is None  # 14 % off, but the spread allows it
    assert temperature_warning('T700K', 700.0, [600.0]) is not None  # one replica: the tolerance alone
    assert temperature_warning('T700K', 700.0, [None, float('nan')]) is None


def test_nonpositive_warning():
    """D ≤ 0 cannot enter an Arrhenius fit: a warning that says so with D ± SE; a positive D, none."""
    warning = nonpositive_warning('T_500K', {'D_cm2_s': -2.95e-6, 'D_err_cm2_s': 4.1e-6})
    assert warning.startswith('T_500K: D = -2.95e-06 ± 4.1e-06 cm²/s is not positive')
    assert 'left out of the Arrhenius fit' in warning
    assert nonpositive_warning('T_500K', {'D_cm2_s': 0.0, 'D_err_cm2_s': 1e-6}) is not None
    assert nonpositive_warning('T_500K', {'D_cm2_s': 1e-9, 'D_err_cm2_s': 1e-6}) is None


@pytest.mark.engines
def test_nonpositive_d_is_left_out_of_the_fit_and_kept(engine_code, session_mace_model, lpsc_cell, monkeypatch):
    """A temperature without resolvable diffusion does not sink the chain: its D stays in the outputs, the fit
    leaves it out (here: too few temperatures left, so no fit) and the summary says why. The criterion itself is
    tested above; here T_600K is declared non-positive so that the path is taken whatever the MD gives."""
    import aiida_mlffdiff.workchains.diffusion as module

    real = module.nonpositive_warning
    monkeypatch.setattr(
        module,
        'nonpositive_warning',
        lambda label, estimate: (
            real(label, {**estimate, 'D_cm2_s': -abs(estimate['D_cm2_s'])})
            if label == 'T_600K'
            else real(label, estimate)
        ),
    )
    node, _ = run_chain(engine_code, session_mace_model, lpsc_cell, [600, 900], target_relative_error=10.0)
    assert node.is_finished_ok, (node.exit_status, node.exit_message, report_of(node))
    assert set(node.outputs.diffusion) == {'T_600K', 'T_900K'}
    assert 'arrhenius' not in node.outputs
    warnings = node.outputs.summary['temperatures']['T_600K']['warnings']
    assert any('left out of the Arrhenius fit' in warning for warning in warnings), warnings
    report = report_of(node)
    assert 'no Arrhenius fit: it needs a positive D at two or more temperatures' in report
