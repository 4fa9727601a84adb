"""Many small CalcJobs through 2 daemon workers on a throw-away profile, optionally with a ``kill -9`` of the daemon
(and of the broker) half-way: run as a script in its own AIIDA_PATH, prints one JSON object.

    python tests/production/load.py --profile-type {sqlite,psql} --jobs 300 --workers 2 [--kill-at 100]
                                    --root DIR

The jobs are ``core.arithmetic.add`` through a code that appends its working directory to a ledger before running
bash, so a job that ran twice shows up twice in the ledger (what "no finished CalcJob is run again" means). The
profile is created in ``DIR`` (SQLite + ZeroMQ via ``verdi presto --use-zeromq``; or PostgreSQL + RabbitMQ via
``verdi profile setup core.psql_dos`` on a database made here, owner the CI role of ``.ci/services.sh``) and deleted
at the end with its database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PG = {'host': 'localhost', 'port': 5432, 'user': 'mlffdiff_ci', 'password': 'mlffdiff_ci'}


def verdi(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    environment = {**os.environ, 'AIIDA_PATH': str(root), 'PATH': f'{bin_dir}:{os.environ.get("PATH", "")}'}
    command = [str(Path(sys.executable).with_name('verdi')), *args]
    result = subprocess.run(command, env=environment, check=False, capture_output=True, text=True)
    if check and result.returncode:
        raise RuntimeError(f'verdi {" ".join(args)} failed ({result.returncode}): {result.stdout} {result.stderr}')
    return result


def create_profile(root: Path, kind: str, name: str) -> None:
    if kind == 'sqlite':
        verdi(root, 'presto', '--profile-name', name, '--use-zeromq', '-n')
        return
    import psycopg

    with psycopg.connect(dbname='postgres', autocommit=True, **PG) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(
            f"CREATE DATABASE \"{name}\" OWNER {PG['user']} ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' "
            "LC_CTYPE 'C.UTF-8' TEMPLATE template0"
        )
    verdi(
        root, 'profile', 'setup', 'core.psql_dos', '-n', '--profile-name', name, '--email', 'ci@mlffdiff.test',
        '--first-name', 'CI', '--last-name', 'Load', '--institution', 'mlffdiff', '--broker', 'core.rabbitmq',
        '--database-hostname', PG['host'], '--database-port', str(PG['port']), '--database-username', PG['user'],
        '--database-password', PG['password'], '--database-name', name,
        '--repository-uri', f'file://{root / "repository"}',
    )  # fmt: skip
    verdi(root, 'computer', 'setup', '-n', '--label', 'localhost', '--hostname', 'localhost', '--transport',
          'core.local', '--scheduler', 'core.direct', '--work-dir', str(root / 'scratch'),
          '--mpiprocs-per-machine', '1')  # fmt: skip
    verdi(root, 'computer', 'configure', 'core.local', 'localhost', '-n', '--safe-interval', '0')
    # .ci/services.sh switches RabbitMQ's consumer timeout off (what aiida-core's version warning is about)
    verdi(root, 'config', 'set', 'warnings.rabbitmq_version', 'false')


def drop_profile(root: Path, kind: str, name: str) -> None:
    verdi(root, 'daemon', 'stop', check=False)
    try:
        from aiida.manage import get_manager

        get_manager().unload_profile()  # close this process's connections before the database goes
    except Exception:
        pass
    if kind == 'psql':
        import psycopg

        with psycopg.connect(dbname='postgres', autocommit=True, **PG) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def daemon_processes() -> list[int]:
    """PIDs of the daemon's circus arbiter and the Python processes it started (the workers; the ZeroMQ broker).

    Not the short-lived shells of transport commands that happen to run at that moment: killing one inside
    ``pyenv rehash`` leaves pyenv's lock behind, and every later login shell then waits 60 s for it (seen here).
    """
    import psutil
    from aiida.engine.daemon.client import get_daemon_client

    pid = get_daemon_client().get_daemon_pid()
    if pid is None:
        return []
    children = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if 'python' in Path(child.exe()).name:
                children.append(child.pid)
    return [pid, *children]


def kill_broker(kind: str) -> float:
    """kill -9 RabbitMQ's Erlang VM and start it again; seconds until it accepts connections."""
    started = time.perf_counter()
    subprocess.run(['pkill', '-9', '-f', 'beam.smp'], check=False)
    time.sleep(1)
    subprocess.run(['service', 'rabbitmq-server', 'start'], check=False, capture_output=True)
    subprocess.run(['rabbitmqctl', '-q', 'await_startup'], check=False, capture_output=True)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--profile-type', choices=['sqlite', 'psql'], required=True)
    parser.add_argument('--jobs', type=int, default=300)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--kill-at', type=int, default=None, help='kill -9 the daemon once this many have finished')
    parser.add_argument('--root', type=Path, required=True)
    parser.add_argument('--timeout', type=float, default=900)
    args = parser.parse_args(argv)
    with throwaway_profile(args.root, args.profile_type, 'load') as (root, name):
        return run(args, root, name)


@contextlib.contextmanager
def throwaway_profile(root: Path, kind: str, purpose: str):
    """A new profile of ``kind`` in its own AIIDA_PATH ``root`` for the duration of the block, dropped after (with
    its database): yields ``(root, profile name)``."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ['AIIDA_PATH'] = str(root)
    os.environ['PATH'] = f'{Path(sys.executable).parent}:{os.environ.get("PATH", "")}'
    name = f'mlffdiff_{purpose}_{kind}_{os.getpid()}'
    create_profile(root, kind, name)
    try:
        yield root, name
    finally:
        drop_profile(root, kind, name)


def run(args, root: Path, name: str) -> int:
    from aiida import load_profile, orm
    from aiida.engine import submit
    from aiida.plugins import CalculationFactory

    load_profile(name)
    ledger = root / 'ledger.txt'
    wrapper = root / 'bash-ledger.sh'
    wrapper.write_text(f'#!/bin/bash\necho "$PWD" >> {ledger}\nexec /bin/bash "$@"\n')
    wrapper.chmod(0o755)
    code = orm.InstalledCode(
        label='bash-ledger', computer=orm.load_computer('localhost'), filepath_executable=str(wrapper),
        default_calc_job_plugin='core.arithmetic.add',
    ).store()  # fmt: skip
    verdi(root, 'daemon', 'start', str(args.workers))
    add = CalculationFactory('core.arithmetic.add')
    started = time.perf_counter()
    nodes = [submit(add, code=code, x=orm.Int(i), y=orm.Int(1)) for i in range(args.jobs)]
    submitted_s = time.perf_counter() - started
    killed = None
    deadline = started + args.timeout
    pks = [node.pk for node in nodes]
    while True:
        query = orm.QueryBuilder().append(
            orm.CalcJobNode, filters={'id': {'in': pks}}, project='attributes.process_state'
        )
        states = [state for (state,) in query.all()]
        done = sum(state in ('finished', 'excepted', 'killed') for state in states)
        if args.kill_at is not None and killed is None and done >= args.kill_at:
            victims = daemon_processes()
            kill_started = time.perf_counter()
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            broker_s = kill_broker(args.profile_type) if args.profile_type == 'psql' else None
            verdi(root, 'daemon', 'start', str(args.workers))
            killed = {'at_finished': done, 'processes': len(victims), 'broker_restart_s': broker_s,
                      'restart_s': time.perf_counter() - kill_started}  # fmt: skip
        if done == len(pks) or time.perf_counter() > deadline:
            break
        time.sleep(2)
    wall = time.perf_counter() - started
    nodes = [orm.load_node(pk) for pk in pks]
    finished_ok = sum(node.is_finished_ok for node in nodes)
    wrong = sum(node.is_finished_ok and node.outputs.sum.value != i + 1 for i, node in enumerate(nodes))
    stuck = {
        node.pk: node.process_state.value if node.process_state else None for node in nodes if not node.is_terminated
    }
    runs = ledger.read_text().split() if ledger.exists() else []
    duplicates = len(runs) - len(set(runs))
    log = root / '.aiida' / 'daemon' / 'log' / f'aiida-{name}.log'
    locked = log.read_text(errors='replace').count('database is locked') if log.exists() else None
    print(json.dumps({
        'profile_type': args.profile_type, 'jobs': len(pks), 'workers': args.workers, 'finished_ok': finished_ok,
        'wrong_results': wrong, 'stuck': stuck, 'ran_twice': duplicates, 'runs': len(runs),
        'database_locked_messages': locked, 'submit_s': round(submitted_s, 1), 'wall_s': round(wall, 1),
        'jobs_per_minute': round(60 * len(pks) / wall, 1), 'kill': killed,
    }))  # fmt: skip
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
