"""A small study through ``submit`` and 2 daemon workers on a throw-away profile, with a ``kill -9`` of the daemon (and
of RabbitMQ on PostgreSQL) in the middle of its MD stage: run as a script in its own AIIDA_PATH, prints one JSON
object.

    python tests/production/study_kill.py --profile-type {sqlite,psql} --root DIR

The study: SevenNet-0 zero-shot (no DFT, no training: the cheapest study with real MD) on the 16-atom α-Li3N cell at
two temperatures, one replica per batch and a target error no batch reaches, so that each temperature runs two
batches one after the other. Once the first MD job has finished and the next ones run, the whole daemon (arbiter,
workers and, for ZeroMQ, the broker) is killed with SIGKILL, and RabbitMQ too on PostgreSQL; then ``verdi daemon
start``. The MD code is the pretrained environment's python behind a wrapper that appends the job's working
directory to a ledger, so a job that ran twice shows up twice. The profile is made and dropped by ``load.py``'s
helpers (``throwaway_profile``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import daemon_processes, kill_broker, throwaway_profile, verdi


def engine_code(root: Path, ledger: Path):
    """The pretrained environment's python behind a ledger wrapper, with the engine extras of a registered code."""
    from aiida import orm

    from aiida_mlffdiff.environments import ENGINES, build_environment, register_codes

    environment = build_environment(ENGINES['pretrained'], log=lambda message: None)
    registered = register_codes(environment, computer_label='localhost', log=lambda message: None)['python']
    wrapper = root / 'python-ledger.sh'
    wrapper.write_text(f'#!/bin/bash\necho "$PWD" >> {ledger}\nexec {registered.filepath_executable} "$@"\n')
    wrapper.chmod(0o755)
    code = orm.InstalledCode(
        label='pretrained-python-ledger', computer=orm.load_computer('localhost'), filepath_executable=str(wrapper)
    )
    for key, value in registered.base.extras.all.items():
        code.base.extras.set(key, value)
    return code.store()


def run(args, root: Path, name: str) -> int:
    from aiida import load_profile, orm
    from aiida.engine import submit

    load_profile(name)
    from aiida_mlffdiff.structures.nitride import li3n_structure
    from aiida_mlffdiff.workchains.study import MlffDiffusionStudyWorkChain

    ledger = root / 'ledger.txt'
    code = engine_code(root, ledger)
    builder = MlffDiffusionStudyWorkChain.get_builder_from_protocol(
        li3n_structure(), [], [], [600, 800], protocol='fast', pretrained=['7net-0'],
        codes={'pretrained_python': code},
        overrides={'diffusion_overrides': {
            'replicas_per_batch': 1, 'max_replicas': 2, 'target_relative_error': 0.001,
            'md': {'timestep_fs': 2.0, 'equilibration_ps': 0.02, 'production_ps': 0.2, 'sampling_interval_fs': 4.0},
        }},
    )  # fmt: skip
    verdi(root, 'daemon', 'start', str(args.workers))
    started = time.perf_counter()
    study = submit(builder)
    killed = None
    deadline = started + args.timeout
    while True:
        study = orm.load_node(study.pk)
        jobs = [node for node in study.called_descendants if isinstance(node, orm.CalcJobNode)]
        states = ['finished' if node.is_terminated else 'active' for node in jobs]
        if killed is None and 'finished' in states and 'active' in states:
            victims = daemon_processes()
            kill_started = time.perf_counter()
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            broker_s = kill_broker(args.profile_type) if args.profile_type == 'psql' else None
            verdi(root, 'daemon', 'start', str(args.workers))
            killed = {'at_finished_jobs': states.count('finished'), 'processes': len(victims),
                      'broker_restart_s': broker_s, 'restart_s': time.perf_counter() - kill_started}  # fmt: skip
        if study.is_terminated or time.perf_counter() > deadline:
            break
        time.sleep(1)
    study = orm.load_node(study.pk)
    wall = time.perf_counter() - started
    descendants = study.called_descendants
    stuck = {node.pk: node.process_state.value for node in descendants if not node.is_terminated}
    md_jobs = [node for node in descendants if isinstance(node, orm.CalcJobNode)]
    runs = ledger.read_text().split() if ledger.exists() else []
    rows = study.outputs.comparison['rows'] if 'comparison' in study.outputs else []
    print(json.dumps({
        'profile_type': args.profile_type, 'workers': args.workers, 'exit_status': study.exit_status,
        'exit_message': study.exit_message, 'rows': [row['label'] for row in rows],
        'd_unresolved_or_value': [
            entry['unresolved'] or entry['D_cm2_s'] for row in rows for entry in row['temperatures'].values()
        ],
        'md_jobs': len(md_jobs), 'md_jobs_finished_ok': sum(node.is_finished_ok for node in md_jobs),
        'runs': len(runs), 'ran_twice': len(runs) - len(set(runs)), 'stuck': stuck, 'kill': killed,
        'wall_s': round(wall, 1),
    }))  # fmt: skip
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--profile-type', choices=['sqlite', 'psql'], required=True)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--root', type=Path, required=True)
    parser.add_argument('--timeout', type=float, default=900)
    args = parser.parse_args(argv)
    with throwaway_profile(args.root, args.profile_type, 'study') as (root, name):
        return run(args, root, name)


if __name__ == '__main__':
    raise SystemExit(main())
