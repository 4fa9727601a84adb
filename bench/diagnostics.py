"""The measured run behind docs/diagnostics.md and the Li3N section of docs/training_choices.md.

On the embedded profile (``make setup engines`` first), one after the other (never concurrently):

1. a study on alpha-Li3N (2×2×1, 16 atoms; ``aiida_mlffdiff.structures.nitride``): PBE labels of the same sampled
   configurations at two reference levels (Γ only and a 0.7 Å⁻¹ k-spacing), MACE, NequIP and DeePMD trained on
   each (protocol ``moderate``), MD at two temperatures; its report (table, label errors, correlation);
2. per architecture, the model trained on the better labels: ``LocalityWorkChain`` on the Li3N cell (default
   radii, up to twice the receptive field) and ``ScalingWorkChain`` (ASE engine, four sizes spanning 128×, 1 and 2
   threads per worker at the probe size); the DeePMD model also with torch-sim (1, 4 and 16 replicas per batch)
   and with LAMMPS (``pair_style deepmd``, the ``lammps`` environment: ``aiida-mlffdiff setup --engines lammps``);
3. the plots into ``--output`` (``locality.png``, ``scaling.png``) and every number into ``diagnostics.json``.

Usage::

    AIIDA_PATH=$PWD/.aiida .venv/bin/python bench/diagnostics.py [--output docs/images/diagnostics]
                                                                  [--temperatures 600,800] [--skip-study PK]

A measurement, not a test: it exits 0 when it ran, whatever the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', type=Path, default=Path('docs/images/diagnostics'))
    parser.add_argument('--temperatures', default='600,800', help='MD temperatures of the study (K)')
    parser.add_argument('--skip-study', type=int, default=None, help='reuse a finished study (pk)')
    parser.add_argument('--profile', default='mlffdiff')
    return parser.parse_args(argv)


def run_study(temperatures: list[float]):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlffdiff.environments.pseudos import DEFAULT_PSEUDO_FAMILY
    from aiida_mlffdiff.structures.nitride import li3n_structure
    from aiida_mlffdiff.workchains.study import MlffDiffusionStudyWorkChain

    structure = li3n_structure().store()
    builder = MlffDiffusionStudyWorkChain.get_builder_from_protocol(
        structure, ['pbe'], ['mace', 'nequip', 'deepmd'], temperatures, protocol='moderate',
        dft_code=orm.load_code('mlffdiff-qe-pw@localhost'), pseudo_family=DEFAULT_PSEUDO_FAMILY,
        computer='localhost', reference_levels={'gamma': 'gamma', 'k2': {'kpoints_spacing': 0.7}},
        overrides={'sampling': {'n_configurations': 16, 'max_strain': 0.03, 'rattle_A': 0.05, 'rattle_max_A': 0.25,
                                'seed': 0}},
    )  # fmt: skip
    started = time.perf_counter()
    _, node = run_get_node(builder)
    return node, time.perf_counter() - started


def main(argv=None) -> int:
    args = parse_args(argv)
    from aiida import load_profile, orm

    load_profile(args.profile)
    from aiida.engine import run_get_node
    from click.testing import CliRunner

    from aiida_mlffdiff.calculations.md_ensemble import engine_environment
    from aiida_mlffdiff.cli import cmd_root
    from aiida_mlffdiff.environments.engines import setup_label
    from aiida_mlffdiff.plotting import plot_locality, plot_scaling
    from aiida_mlffdiff.structures.nitride import li3n_structure
    from aiida_mlffdiff.workchains.locality import LocalityWorkChain
    from aiida_mlffdiff.workchains.scaling import ScalingWorkChain

    args.output.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    runner = CliRunner()
    if args.skip_study:
        study, wall = orm.load_node(args.skip_study), None
    else:
        study, wall = run_study([float(t) for t in args.temperatures.split(',')])
    report = runner.invoke(cmd_root, ['report', str(study.pk)])
    print(report.output)
    results['study'] = {'pk': study.pk, 'exit_status': study.exit_status, 'wall_s': wall, 'report': report.output}

    cell = li3n_structure(supercell=(1, 1, 1)).store()
    codes = {}
    for architecture in ('mace', 'nequip', 'deepmd'):
        models = {label: model for label, model in study.outputs.models.items() if label.endswith(architecture)}
        model = models.get(f'pbe_k2_{architecture}') or next(iter(models.values()))
        code = orm.load_code(f'{setup_label(engine_environment(model, "ase"), "python")}@localhost')
        codes[architecture] = (model, code)

    profiles, scalings, variations = {}, {}, {}
    for architecture, (model, code) in codes.items():
        builder = LocalityWorkChain.get_builder_from_model(model, cell, code, max_atoms=8000)
        started = time.perf_counter()
        outputs, node = run_get_node(builder)
        label = f'{architecture} (r_c {model.cutoff_A:g} Å, r_f {builder.receptive_field_A.value:g} Å)'
        if node.is_finished_ok:
            profiles[label] = outputs['locality'].get_dict()
        results.setdefault('locality', {})[architecture] = {
            'pk': node.pk, 'exit_status': node.exit_status, 'wall_s': time.perf_counter() - started,
            'locality': profiles.get(label),
        }  # fmt: skip
        print(f'locality {architecture}: LocalityWorkChain<{node.pk}> [{node.exit_status}]')

    runs = [(a, m, c, 'ase', {'threads_per_worker': [1, 2]}) for a, (m, c) in codes.items()]
    deepmd, _ = codes['deepmd']
    torchsim = orm.load_code(f'{setup_label(engine_environment(deepmd, "torchsim"), "python")}@localhost')
    runs.append(('deepmd', deepmd, torchsim, 'torchsim', {'replicas_per_batch': [1, 4, 16]}))
    runs.append(('deepmd', deepmd, orm.load_code(f'{setup_label("lammps", "lmp")}@localhost'), 'lammps', {}))
    for architecture, model, code, engine, extra in runs:
        builder = ScalingWorkChain.get_builder_from_model(
            model, cell, code, engine=engine, atoms=[16, 128, 512, 2048], **extra
        )
        started = time.perf_counter()
        outputs, node = run_get_node(builder)
        label = f'{architecture}, {engine}'
        if node.is_finished_ok:
            scalings[label] = outputs['scaling'].get_dict()
            variations[label] = [outputs[k].get_dict() for k in ('batching', 'threading') if k in outputs]
        results.setdefault('scaling', {})[label] = {
            'pk': node.pk, 'exit_status': node.exit_status, 'wall_s': time.perf_counter() - started,
            'scaling': scalings.get(label), 'variations': variations.get(label),
        }  # fmt: skip
        print(f'scaling {label}: ScalingWorkChain<{node.pk}> [{node.exit_status}]')

    if profiles:
        plot_locality(profiles, args.output / 'locality.png')
    if scalings:
        plot_scaling(scalings, args.output / 'scaling.png', variations)
    plan = runner.invoke(cmd_root, ['plan', '--model', str(deepmd.pk), '--atoms', '416', '--engine', 'ase'])
    print(plan.output)
    results['plan_deepmd_416'] = plan.output
    (args.output / 'diagnostics.json').write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps({k: v for k, v in results.items() if k != 'study'}, indent=1, default=str)[:6000])
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
