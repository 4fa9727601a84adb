"""The production path in the suite: PostgreSQL + RabbitMQ and SQLite + ZeroMQ under 300 CalcJobs with a kill -9 of
the daemon (and of RabbitMQ) half-way, and SLURM (slurmctld + slurmd + munge on this machine) running a training
job and an MD batch with their resources, walltime, partition and account.

The services come from Debian's packages and are started by ``make services`` (``.ci/services.sh``), which
``make test`` runs first; a missing service fails these tests with that instruction (it is never skipped).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node

LOAD = Path(__file__).with_name('load.py')
JOBS = 300


def service_problem() -> str | None:
    checks = {
        'PostgreSQL': ['pg_isready', '-q', '-h', 'localhost'],
        'RabbitMQ': ['rabbitmqctl', '-q', 'status'],
        'SLURM': ['sinfo', '-h'],
    }
    for name, command in checks.items():
        if shutil.which(command[0]) is None or subprocess.run(command, capture_output=True).returncode != 0:
            return f'{name} is not running: `make services` (as root) installs and starts it.'
    return None


@pytest.fixture(scope='module')
def services():
    problem = service_problem()
    if problem:
        pytest.fail(problem)


@pytest.mark.production
@pytest.mark.parametrize('profile_type', ['sqlite', 'psql'])
def test_300_calcjobs_and_a_kill_9_of_the_daemon(services, profile_type, tmp_path, capsys):
    """300 CalcJobs submitted at once through 2 daemon workers; once 100 have finished, kill -9 of the daemon (its
    arbiter, workers and, for ZeroMQ, the broker) and of RabbitMQ, then `verdi daemon start`: every job finishes
    once with the right result, nothing stays Running/Waiting."""
    result = subprocess.run(
        [sys.executable, str(LOAD), '--profile-type', profile_type, '--jobs', str(JOBS), '--kill-at', '100',
         '--root', str(tmp_path / 'aiida')],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(f'\nload test {profile_type}: {json.dumps(figures)}')
    assert figures['finished_ok'] == JOBS, figures
    assert figures['wrong_results'] == 0
    assert figures['stuck'] == {}
    assert figures['ran_twice'] == 0, 'a finished CalcJob ran again after the kill -9'
    assert figures['runs'] == JOBS
    assert figures['kill']['processes'] >= 3  # the arbiter and the 2 workers at least
    if profile_type == 'psql':
        assert figures['kill']['broker_restart_s'] is not None


STUDY = Path(__file__).with_name('study_kill.py')


@pytest.mark.production
@pytest.mark.engines
def test_a_study_through_the_daemon_on_postgresql_with_a_kill_9_in_its_md(
    services, engine_environment, tmp_path, capsys
):
    """A small study (SevenNet-0 zero-shot on α-Li3N, 2 temperatures × 2 batches) submitted to 2 daemon workers on
    PostgreSQL + RabbitMQ; after its first MD job finished, kill -9 of the daemon and of RabbitMQ, then `verdi daemon
    start`: the study finishes with its row, no MD job ran twice, nothing stays Running/Waiting. (The SQLite + ZeroMQ
    daemon study is tests/workchains/test_study.py; the kill -9 in a DiffusionWorkChain's MD on SQLite is
    tests/workchains/test_diffusion.py.)"""
    engine_environment('pretrained')  # built (or found in the cache) before the timed script runs
    result = subprocess.run(
        [sys.executable, str(STUDY), '--profile-type', 'psql', '--root', str(tmp_path / 'aiida')],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(f'\nstudy with kill -9 (psql): {json.dumps(figures)}')
    assert figures['exit_status'] == 0, figures
    assert figures['rows'] == ['pretrained_sevenn']
    assert len(figures['d_unresolved_or_value']) == 2  # one D (or why not) per temperature
    assert figures['kill'] is not None, 'the study ended before the kill'
    assert figures['kill']['processes'] >= 3
    assert figures['kill']['broker_restart_s'] is not None
    assert figures['md_jobs'] == figures['md_jobs_finished_ok'] == 4  # 2 temperatures × 2 batches, none repeated
    assert figures['runs'] == 4
    assert figures['ran_twice'] == 0, 'a finished MD job ran again after the kill -9'
    assert figures['stuck'] == {}


# ---- SLURM ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def slurm_computer(services, tmp_path):
    """A computer on core.slurm (local transport) for this machine's one-node cluster."""
    computer = orm.Computer(
        label=f'slurm-{tmp_path.name}', hostname='localhost', transport_type='core.local',
        scheduler_type='core.slurm', workdir=str(tmp_path / 'scratch'),
    ).store()  # fmt: skip
    computer.set_default_mpiprocs_per_machine(2)
    computer.configure(safe_interval=0.0)
    computer.set_minimum_job_poll_interval(1.0)
    return computer


def on_computer(code: orm.InstalledCode, computer: orm.Computer) -> orm.InstalledCode:
    """The same engine executable (and its engine extras) registered on ``computer``."""
    copy = orm.InstalledCode(
        label=f'{code.label}-slurm', computer=computer, filepath_executable=str(code.filepath_executable),
        default_calc_job_plugin=code.default_calc_job_plugin,
    )  # fmt: skip
    for key, value in code.base.extras.all.items():
        copy.base.extras.set(key, value)
    return copy.store()


SLURM_OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'max_wallclock_seconds': 600,
    'queue_name': 'debug',
    'account': 'mlffdiff',
}


@pytest.mark.production
@pytest.mark.engines
def test_training_and_md_through_slurm(slurm_computer, engine_code, make_training_set, lpsc_cell):
    """A MACE training job and an MD batch of it go through sbatch/squeue with the options asked for."""
    from aiida_mlffdiff.calculations.md_ensemble import MdEnsembleCalculation
    from aiida_mlffdiff.calculations.train import TrainCalculation
    from aiida_mlffdiff.calculations.writers import get_protocol_parameters

    train, node = run_get_node(
        TrainCalculation,
        code=on_computer(engine_code('mace', 'train'), slurm_computer),
        architecture=orm.Str('mace'),
        training_set=make_training_set(n=12, seed=3),
        validation_set=make_training_set(n=4, seed=4),
        parameters=orm.Dict(get_protocol_parameters('mace', 'fast', {'max_epochs': 5})),
        seed=orm.Int(1),
        metadata={'options': SLURM_OPTIONS},
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    script = node.base.repository.get_object_content('_aiidasubmit.sh')
    for line in ('#SBATCH --account=mlffdiff', '#SBATCH --partition=debug', '#SBATCH --time=00:10:00',
                 '#SBATCH --nodes=1', '#SBATCH --ntasks-per-node=1'):  # fmt: skip
        assert line in script, script
    assert node.get_job_id()
    assert int(node.get_job_id()) > 0

    md_options = {**SLURM_OPTIONS, 'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2}}
    outputs, md = run_get_node(
        MdEnsembleCalculation,
        code=on_computer(engine_code('mace', 'python'), slurm_computer),
        model=train['model'],
        structure=lpsc_cell,
        parameters=orm.Dict(
            {
                'engine': 'ase',
                'temperature_K': 300.0,
                'timestep_fs': 1.0,
                'equilibration_ps': 0.0,
                'production_ps': 0.05,
                'n_replicas': 2,
                'seed': 0,
            }
        ),
        metadata={'options': md_options},
    )
    assert md.exit_status in (0, 340), (md.exit_status, md.exit_message)  # a crude model may lose a replica
    script = md.base.repository.get_object_content('_aiidasubmit.sh')
    assert '#SBATCH --ntasks-per-node=2' in script
    assert '#SBATCH --account=mlffdiff' in script
    assert outputs['run_info']['workers'] == 2  # the MD workers come from the job's resources
    assert int(md.get_job_id()) > int(node.get_job_id())
