"""How many DFT single points should a workstation run at once? The demo's DFT stage, timed at several limits.

The demo's reference data: Quantum ESPRESSO PBE single points of rattled copies of the 13-atom Li6PS5Cl cell at the
``moderate`` protocol (30 Ry, 2×2×2 k-points), one pw.x per configuration on one core (``core.direct``: AiiDA starts
every job it is given at once). ``ReferenceDataWorkChain``'s own ``max_concurrent`` (a sliding window, AiiDA's limit,
no extra service) sets how many run at once; this runs the same configurations at each limit, one after the other,
with caching off, and prints the wall time of each::

    AIIDA_PATH=$PWD/.aiida .venv/bin/python bench/workstation_concurrency.py [--configurations 8] [--limits 8,4,2,1]

It needs the profile and codes of ``make demo`` (``mlffdiff-qe-pw@localhost``, the offline pseudopotential family).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def configurations(n: int, seed: int = 0) -> dict:
    """``n`` copies of the 13-atom cell, each atom displaced by a normal 0.1 Å per component."""
    from aiida import orm

    from aiida_mlffdiff.structures.argyrodite import li6ps5cl

    rng = np.random.default_rng(seed)
    result = {}
    for i in range(n):
        atoms = li6ps5cl(cell='primitive')
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        result[f'c{i:02d}'] = orm.StructureData(ase=atoms)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configurations', type=int, default=8)
    parser.add_argument('--limits', default='8,4,2,1', help='max_concurrent values, comma-separated')
    parser.add_argument('--protocol', default='moderate')
    args = parser.parse_args(argv)

    from aiida import load_profile, orm
    from aiida.engine import run_get_node
    from aiida.manage.caching import disable_caching

    from aiida_mlffdiff.environments.pseudos import DEFAULT_PSEUDO_FAMILY
    from aiida_mlffdiff.workchains.reference import ReferenceDataWorkChain

    load_profile()
    code = orm.load_code('mlffdiff-qe-pw@localhost')
    rows = []
    for limit in [int(value) for value in args.limits.split(',')]:
        builder = ReferenceDataWorkChain.get_builder_from_protocol(
            code, configurations(args.configurations), 'pbe', protocol=args.protocol,
            pseudo_family=DEFAULT_PSEUDO_FAMILY, max_concurrent=limit,
        )  # fmt: skip
        started = time.perf_counter()
        with disable_caching():
            _, node = run_get_node(builder)
        wall = time.perf_counter() - started
        jobs = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]
        rows.append((limit, wall, node.exit_status, len(jobs)))
        print(f'max_concurrent {limit}: {wall:.0f} s wall, {len(jobs)} pw.x jobs, exit {node.exit_status}', flush=True)
    best = min(rows, key=lambda row: row[1])
    print(f'\n{args.configurations} single points ({args.protocol}) on {os.cpu_count()} cores:')
    for limit, wall, status, _ in rows:
        failed = f'  [exit {status}]' if status else ''
        print(f'  at most {limit} at once: {wall:6.0f} s  ({wall / best[1]:.2f} × the fastest){failed}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
