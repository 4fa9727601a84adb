"""The measured run behind docs/force_constants.md: Li2S force constants of DFT, a MACE trained on Li2S DFT labels
and the pretrained SevenNet-0.

On the embedded profile (``make setup engines`` first), nothing else running:

1. 24 rattled and strained 12-atom Li2S cells (seeded) labelled by Quantum ESPRESSO (PBE, protocol ``fast``, pw.x
   on 2 MPI ranks) → a TrainingSet → MACE (protocol ``fast``) with ``TrainingWorkChain``;
2. ``ForceConstantsWorkChain`` on the 96-atom 2×2×2 cubic cell: one ±0.03 Å random-displacement pair, forces from
   QE, the MACE and SevenNet-0 (CHGNet 0.3.0 is refused: its 6 Å cutoff needs a 12 Å wide supercell);
3. the plot into ``--output`` (``force_constants.png``) and every number, with the wall times, into
   ``force_constants.json``.

Usage::

    AIIDA_PATH=$PWD/.aiida .venv/bin/python bench/force_constants.py [--output docs/images/force_constants]

A measurement, not a test: it exits 0 when it ran, whatever the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: pw.x on both cores with MPI (the Debian build has no OpenMP); as root, Open MPI must be told it may run.
MPI_OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2},
    'withmpi': True,
    'environment_variables': {'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1'},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', type=Path, default=Path('docs/images/force_constants'))
    parser.add_argument('--profile', default='mlffdiff')
    parser.add_argument('--configurations', type=int, default=24, help='rattled 12-atom cells to train on')
    return parser.parse_args(argv)


def rattled_cells(n: int):
    """``n`` 12-atom Li2S cells, strained (±2 %) and rattled (0.04–0.12 Å), seeded."""
    import numpy as np
    from aiida import orm

    from aiida_mlffdiff.structures.sulfide import li2s

    rng = np.random.default_rng(0)
    cells = {}
    for index in range(n):
        atoms = li2s('conventional')
        strain = rng.normal(0.0, 0.02, size=(3, 3))
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.04 + 0.08 * index / max(n - 1, 1), size=atoms.positions.shape)
        cells[f'c{index:03d}'] = orm.StructureData(ase=atoms)
    return cells


def main(argv=None) -> int:
    args = parse_args(argv)
    from aiida import load_profile, orm

    load_profile(args.profile)
    from aiida.engine import run_get_node

    from aiida_mlffdiff.calculations.evaluate import pretrained_model
    from aiida_mlffdiff.cli.plot import force_constant_sources
    from aiida_mlffdiff.environments.pseudos import DEFAULT_PSEUDO_FAMILY
    from aiida_mlffdiff.plotting import plot_force_constants
    from aiida_mlffdiff.structures.sulfide import li2s_structure
    from aiida_mlffdiff.workchains.force_constants import ForceConstantsWorkChain
    from aiida_mlffdiff.workchains.reference import ReferenceDataWorkChain
    from aiida_mlffdiff.workchains.training import TrainingWorkChain

    pw = orm.load_code('mlffdiff-qe-pw@localhost')
    walls = {}
    started = time.perf_counter()
    builder = ReferenceDataWorkChain.get_builder_from_protocol(
        pw, rattled_cells(args.configurations), 'pbe', protocol='fast', options=MPI_OPTIONS,
        pseudo_family=DEFAULT_PSEUDO_FAMILY, max_concurrent=1,
    )  # fmt: skip
    labels, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    walls['labels_s'] = time.perf_counter() - started

    started = time.perf_counter()
    builder = TrainingWorkChain.get_builder_from_protocol(
        orm.load_code('mlffdiff-mace-train@localhost'), orm.load_code('mlffdiff-mace-python@localhost'),
        labels['training_set'], 'mace', protocol='fast',
    )  # fmt: skip
    trained, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    walls['training_s'] = time.perf_counter() - started
    mace = trained['model']

    started = time.perf_counter()
    builder = ForceConstantsWorkChain.get_builder_from_protocol(
        li2s_structure('conventional'), [2, 2, 2],
        models={'mace': mace, 'sevennet': pretrained_model('7net-0')},
        model_codes={'mace': orm.load_code('mlffdiff-mace-python@localhost'),
                     'sevennet': orm.load_code('mlffdiff-pretrained-python@localhost')},
        dft_code=pw, protocol='fast', dft_options=MPI_OPTIONS, pseudo_family=DEFAULT_PSEUDO_FAMILY,
        parameters={'fc3_cutoff_A': 4.5, 'mesh': [12, 12, 12]},
    )  # fmt: skip
    results, chain = run_get_node(builder)
    walls['force_constants_s'] = time.perf_counter() - started
    print(f'ForceConstantsWorkChain<{chain.pk}> exit {chain.exit_status}')
    for call in chain.called:
        if call.process_label in ('ReferenceDataWorkChain', 'PredictCalculation', 'compute_force_constants'):
            walls.setdefault('steps_s', {})[f'{call.process_label}<{call.pk}>'] = (
                call.mtime - call.ctime
            ).total_seconds()

    args.output.mkdir(parents=True, exist_ok=True)
    sources, metrics = force_constant_sources(chain)
    plot_force_constants(sources, metrics, args.output / 'force_constants.png')
    record = {
        'force_constants_pk': chain.pk,
        'mace_model': mace.describe(),
        'mace_test_metrics': trained['test_metrics'].get_dict() if 'test_metrics' in trained else None,
        'checks': {key: node.get_dict() for key, node in results['checks'].items()},
        'metrics': metrics,
        'wall_s': walls,
    }
    (args.output / 'force_constants.json').write_text(json.dumps(record, indent=1, default=str))
    print(json.dumps({key: record[key] for key in ('checks', 'wall_s')}, indent=1, default=str))
    for key, entry in metrics.items():
        shells = ', '.join(f'{s["distance_A"]:.2f} Å {s["relative_error"]:.2f}' for s in entry['fc2_shells'][:5])
        print(f'{key}: Φ2 {entry["fc2"]}, Φ3 {entry.get("fc3")}, phonons {entry["phonons"]}, shells {shells}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
