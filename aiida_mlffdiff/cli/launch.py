"""``aiida-mlffdiff launch study``: submit (``--daemon``) or run a functionals × architectures × temperatures study."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_root

#: Shipped structures ``--structure`` accepts by name.
SHIPPED = ('li6ps5cl-primitive', 'li6ps5cl-conventional', 'li3n', 'li2s-primitive', 'li2s-conventional', 'na3ps4')


def _names(value: str) -> list[str]:
    return [item.strip().lower() for item in value.split(',') if item.strip()]


def _temperatures(value: str) -> list[float]:
    try:
        return [float(item) for item in value.split(',') if item.strip()]
    except ValueError as exception:
        raise ValueError(f'temperatures must be numbers in K separated by commas: {exception}') from exception


def _sizes(value: str) -> list[int | float]:
    """``12,24`` (counts) or ``0.25,0.5,1.0`` (fractions of the train part), or a mix."""
    sizes = []
    for item in (item.strip() for item in value.split(',') if item.strip()):
        try:
            sizes.append(int(item) if item.isdigit() else float(item))
        except ValueError as exception:
            raise ValueError(
                f'dataset sizes must be counts (12) or fractions of the train part (0.5), comma-separated: {item!r}.'
            ) from exception
    return sizes


def load_structure(value: str):
    """A StructureData from a pk/UUID, a shipped name (:data:`SHIPPED`; ``li3n`` is the 2×2×1 α-Li3N cell, ``li2s-*``
    antifluorite Li2S, ``na3ps4`` tetragonal Na3PS4) or a file ASE reads. A new one (shipped or file) is left
    unstored: the launch stores it with the process, a refused launch stores nothing.

    :raises ValueError: none of these.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    if value == 'li3n':
        from ..structures.nitride import li3n_structure

        return li3n_structure()
    if value == 'na3ps4':
        from ..structures.sodium import na3ps4_structure

        return na3ps4_structure()
    if value.startswith('li2s-') and value in SHIPPED:
        from ..structures.sulfide import li2s_structure

        return li2s_structure(cell=value.split('-')[1])
    if value in SHIPPED:
        from ..structures.argyrodite import li6ps5cl_structure

        return li6ps5cl_structure(cell=value.split('-')[1])
    path = Path(value)
    if path.is_file():
        from ase.io import read

        try:
            return orm.StructureData(ase=read(path))
        except Exception as exception:  # ASE raises many kinds for unreadable files
            raise ValueError(f'ASE cannot read {path}: {exception}') from exception
    try:
        node = orm.load_node(value)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        raise ValueError(
            f'{value!r} is neither a StructureData pk/UUID, a file, nor one of {", ".join(SHIPPED)}.'
        ) from exception
    if not isinstance(node, orm.StructureData):
        raise ValueError(f'node {value} is a {node.__class__.__name__}, not a StructureData.')
    return node


@cmd_root.group('launch')
def launch():
    """Launch work chains of the plugin."""


@launch.command('study')
@click.option('-s', '--structure', required=True, help=f'pk/UUID, a structure file, or {" | ".join(SHIPPED)}.')
@click.option('--md-structure', default=None, help='Cell of the MD, same forms as --structure [default: structure].')
@click.option('-f', '--functionals', default='pbe,hse06', show_default=True, help='Comma-separated functionals.')
@click.option('-a', '--architectures', default='mace,nequip,deepmd', show_default=True, help='Comma-separated.')
@click.option('--pretrained', default='', help='Zero-shot rows: chgnet-0.3.0, 7net-0 (comma-separated).')
@click.option('-T', '--temperatures', required=True, help='MD temperatures in K, comma-separated (e.g. 600,800).')
@click.option(
    '-p', '--protocol', type=click.Choice(['fast', 'moderate', 'precise']), default='moderate', show_default=True
)
@click.option('--dft-engine', type=click.Choice(['qe', 'vasp']), default='qe', show_default=True)
@click.option('--dft-code', default=None, help='Code label or pk [default for qe: mlffdiff-qe-pw@COMPUTER].')
@click.option('--pseudo-family', default=None, help='qe: aiida-pseudo family [default: the one setup installs].')
@click.option('--potential-family', default=None, help='vasp: POTCAR family label.')
@click.option(
    '--dataset-sizes',
    default='',
    help='Dataset-size axis: train sizes, counts (12) or fractions of the train part (0.5), comma-separated; nested '
    'subsets, one test set.',
)
@click.option(
    '--reference-levels',
    default='',
    help="Reference-quality axis: the DFT engine's levels, cheapest first, the reference last (e.g. gamma,converged).",
)
@click.option(
    '--budget-hours', type=float, default=None, help="Warn when a row's MD may take longer (wall h, measured scaling)."
)
@click.option('--mobile-species', default='Li', show_default=True, help='The diffusing element.')
@click.option('--mobile-charge', type=float, default=1.0, show_default=True, help='Its charge number (e), for σ.')
@click.option('-Y', '--computer', default='localhost', show_default=True, help='Computer of the engine codes.')
@click.option('-d', '--daemon', is_flag=True, help='Submit to the daemon and return (else run here, with progress).')
@decorators.with_dbenv()
def launch_study(
    structure,
    md_structure,
    functionals,
    architectures,
    pretrained,
    temperatures,
    protocol,
    dft_engine,
    dft_code,
    pseudo_family,
    potential_family,
    dataset_sizes,
    reference_levels,
    budget_hours,
    mobile_species,
    mobile_charge,
    computer,
    daemon,
):
    """Sample, label with DFT, train every architecture on every functional's data, and compute D(T) per model."""
    try:
        node = study_builder_and_launch(
            structure=load_structure(structure),
            md_structure=load_structure(md_structure) if md_structure else None,
            functionals=_names(functionals),
            architectures=_names(architectures),
            pretrained=_names(pretrained),
            temperatures=_temperatures(temperatures),
            protocol=protocol,
            dft_engine=dft_engine,
            dft_code=dft_code,
            pseudo_family=pseudo_family,
            potential_family=potential_family,
            dataset_sizes=_sizes(dataset_sizes),
            reference_levels=_names(reference_levels),
            mobile_species=mobile_species,
            mobile_charge=mobile_charge,
            budget_hours=budget_hours,
            computer=computer,
            daemon=daemon,
        )
    except ValueError as exception:
        echo.echo_critical(str(exception))
    if daemon:
        echo.echo_success(f'submitted MlffDiffusionStudyWorkChain<{node.pk}>')
        echo.echo(f'  watch:  verdi process list -a -p1   |   verdi process report {node.pk}')
        echo.echo(f'  result: aiida-mlffdiff report {node.pk}   |   aiida-mlffdiff plot {node.pk}')
    elif node.is_finished_ok:
        echo.echo_success(f'MlffDiffusionStudyWorkChain<{node.pk}> finished; table: aiida-mlffdiff report {node.pk}')
    else:
        echo.echo_warning(f'MlffDiffusionStudyWorkChain<{node.pk}> finished [{node.exit_status}]: {node.exit_message}')


def study_builder_and_launch(*, daemon: bool, dft_code: str | None, computer: str, **arguments):
    """Build the study from the protocol and submit it (``daemon``) or run it here with reports on the terminal.

    :raises ValueError: a missing code, a bad argument or inputs the study refuses (nothing is stored but the
        structure and the codes' lookups).
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.engine import run_get_node, submit

    from ..architectures import ARCHITECTURES
    from ..calculations.evaluate import PRETRAINED_MODELS
    from ..environments.dft_codes import QE_CODE_LABEL
    from ..environments.pseudos import DEFAULT_PSEUDO_FAMILY
    from ..workchains.study import MlffDiffusionStudyWorkChain

    # Names first: a misspelled model is the problem to report, not a code that a correct name would also need.
    unknown = sorted(set(arguments['pretrained']) - set(PRETRAINED_MODELS))
    if unknown:
        raise ValueError(
            f'unknown pretrained model(s) {", ".join(unknown)}; shipped with their packages: '
            f'{", ".join(PRETRAINED_MODELS)}.'
        )
    unknown = sorted(set(arguments['architectures']) - set(ARCHITECTURES))
    if unknown:
        raise ValueError(f'unknown architecture(s) {", ".join(unknown)}; known: {", ".join(ARCHITECTURES)}.')
    code = None
    if arguments['functionals'] and arguments['architectures']:
        label = dft_code or (f'{QE_CODE_LABEL}@{computer}' if arguments['dft_engine'] == 'qe' else None)
        if label is None:
            raise ValueError('--dft-code is needed for the vasp engine.')
        try:
            code = orm.load_code(label)
        except NotExistent as exception:
            raise ValueError(
                f'no code {label}: run `aiida-mlffdiff setup` (registers pw.x) or pass --dft-code.'
            ) from exception
    engine_kwargs = {}
    if arguments['dft_engine'] == 'qe':
        engine_kwargs['pseudo_family'] = arguments['pseudo_family'] or DEFAULT_PSEUDO_FAMILY
    elif arguments['potential_family']:
        engine_kwargs['potential_family'] = arguments['potential_family']
    try:
        builder = MlffDiffusionStudyWorkChain.get_builder_from_protocol(
            arguments['structure'],
            arguments['functionals'],
            arguments['architectures'],
            arguments['temperatures'],
            protocol=arguments['protocol'],
            dft_code=code,
            dft_engine=arguments['dft_engine'],
            pretrained=arguments['pretrained'],
            md_structure=arguments['md_structure'],
            computer=computer,
            dataset_sizes=arguments.get('dataset_sizes') or None,
            reference_levels=arguments.get('reference_levels') or None,
            mobile_species=arguments.get('mobile_species', 'Li'),
            mobile_charge=arguments.get('mobile_charge', 1.0),
            **engine_kwargs,
        )
    except ValueError as exception:
        raise ValueError(f'cannot build the study: {exception}') from exception
    spec = MlffDiffusionStudyWorkChain.spec().inputs
    problem = spec.validate(spec.pre_process(builder._inputs(prune=True)))
    if problem is not None:
        raise ValueError(f'invalid study inputs: {problem.message}')
    if arguments.get('budget_hours') is not None:
        from ..planner import study_md_budget

        for warning in study_md_budget(builder, computer, arguments['budget_hours']):
            echo.echo_warning(warning)
    if daemon:
        return submit(builder)
    started = time.perf_counter()
    _, node = run_get_node(builder)
    echo.echo_report(f'study ran in {time.perf_counter() - started:.0f} s')
    return node


def _model_and_code(model: str, environment_of, computer: str, executable: str = 'python'):
    """The MlffModel named by ``model`` (pk/UUID or a pretrained name) and the registered ``executable`` of the
    environment ``environment_of(model)`` on ``computer``; ValueError naming what is missing."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from ..calculations.evaluate import PRETRAINED_MODELS, pretrained_model
    from ..data.mlff_model import MlffModel
    from ..environments.engines import setup_label

    try:
        node = pretrained_model(model) if model in PRETRAINED_MODELS else orm.load_node(model)
    except NotExistent as exception:
        raise ValueError(f'no model {model!r}: {exception}') from exception
    if not isinstance(node, MlffModel):
        raise ValueError(f'node {model} is a {node.__class__.__name__}, not an MlffModel.')
    environment = environment_of(node)
    label = setup_label(environment, executable, computer)
    try:
        return node, orm.load_code(label)
    except NotExistent as exception:
        raise ValueError(f'no code {label}: run `aiida-mlffdiff setup --engines {environment}`.') from exception


def _check_and_launch(process, builder, daemon: bool, after: str):
    """Refuse a builder its process would refuse (one message, nothing run), then submit it or run it here."""
    from aiida.engine import run_get_node, submit

    spec = process.spec().inputs
    problem = spec.validate(spec.pre_process(builder._inputs(prune=True)))
    if problem is not None:
        echo.echo_critical(f'invalid {process.__name__} inputs: {problem.message}')
    name = process.__name__
    if daemon:
        chain = submit(builder)
        echo.echo_success(f'submitted {name}<{chain.pk}>; then: {after.format(pk=chain.pk)}')
        return
    _, chain = run_get_node(builder)
    if chain.is_finished_ok:
        echo.echo_success(f'{name}<{chain.pk}> finished; then: {after.format(pk=chain.pk)}')
    else:
        echo.echo_warning(f'{name}<{chain.pk}> finished [{chain.exit_status}]: {chain.exit_message}')


def _radii(value: str) -> list[float] | None:
    try:
        return [float(item) for item in value.split(',') if item.strip()] or None
    except ValueError as exception:
        raise ValueError(f'radii must be numbers in Å separated by commas: {exception}') from exception


@launch.command('locality')
@click.argument('model')
@click.option('-s', '--structure', required=True, help=f'Cell to repeat: pk/UUID, a file, or {" | ".join(SHIPPED)}.')
@click.option('--radii', default='', help='Radii R (Å) of the fixed region, comma-separated [½ r_c … 2 r_f + margin].')
@click.option('--samples', type=int, default=4, show_default=True, help='Displaced configurations per radius.')
@click.option('--amplitude', type=float, default=0.05, show_default=True, help='Displacement per component (Å).')
@click.option('--receptive-field', type=float, default=None, help="r_f (Å) [from the model's training parameters].")
@click.option('--max-atoms', type=int, default=5000, show_default=True, help='Largest supercell allowed.')
@click.option('-Y', '--computer', default='localhost', show_default=True, help='Computer of the engine code.')
@click.option('-d', '--daemon', is_flag=True, help='Submit to the daemon and return (else run here).')
@decorators.with_dbenv()
def launch_locality(model, structure, radii, samples, amplitude, receptive_field, max_atoms, computer, daemon):
    """The locality test of MODEL (pk/UUID of an MlffModel, or a pretrained name such as 7net-0)."""
    from ..workchains.locality import LocalityWorkChain

    try:
        node, code = _model_and_code(model, lambda node: node.engine, computer)
        builder = LocalityWorkChain.get_builder_from_model(
            node, load_structure(structure), code, radii_A=_radii(radii), receptive_field=receptive_field,
            n_samples=samples, amplitude_A=amplitude, max_atoms=max_atoms,
        )  # fmt: skip
    except ValueError as exception:
        echo.echo_critical(str(exception))
    _check_and_launch(LocalityWorkChain, builder, daemon, 'aiida-mlffdiff plot {pk}')


@launch.command('force-constants')
@click.option('-s', '--structure', required=True, help=f'Ordered unit cell: pk/UUID, a file, or {" | ".join(SHIPPED)}.')
@click.option('--supercell', required=True, help='Repetitions, e.g. 2,2,2 (each model needs a width ≥ 2 × its cutoff).')
@click.option('-m', '--model', 'models', multiple=True, help='A model: pk/UUID or a pretrained name (repeatable).')
@click.option('--dft/--no-dft', default=True, show_default=True, help='Compute the DFT reference (Quantum ESPRESSO).')
@click.option('-F', '--functional', default='pbe', show_default=True, help='DFT functional.')
@click.option(
    '-p', '--protocol', default='moderate', show_default=True, help='DFT protocol: fast | moderate | precise.'
)
@click.option('--orders', type=click.Choice(['2', '2,3']), default='2,3', show_default=True)
@click.option('--distance', type=float, default=0.03, show_default=True, help='Displacement of every atom (Å).')
@click.option('--snapshots', type=int, default=1, show_default=True, help='Random ±u snapshot pairs.')
@click.option('--fc3-cutoff', type=float, default=None, help='Pair cutoff of Φ3 (Å) [the whole supercell].')
@click.option('--mpi', type=int, default=1, show_default=True, help='MPI ranks of each pw.x.')
@click.option('-Y', '--computer', default='localhost', show_default=True, help='Computer of the codes.')
@click.option('-d', '--daemon', is_flag=True, help='Submit to the daemon and return (else run here).')
@decorators.with_dbenv()
def launch_force_constants(
    structure,
    supercell,
    models,
    dft,
    functional,
    protocol,
    orders,
    distance,
    snapshots,
    fc3_cutoff,
    mpi,
    computer,
    daemon,
):
    """2nd- and 3rd-order force constants of DFT and of each MODEL on the same displaced supercells."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from ..environments.engines import setup_label
    from ..environments.pseudos import DEFAULT_PSEUDO_FAMILY
    from ..workchains.force_constants import ForceConstantsWorkChain

    try:
        repetitions = _integers(supercell, '--supercell') or []
        nodes, codes = {}, {}
        for name in models:
            node, code = _model_and_code(name, lambda node: node.engine, computer)
            key = node.architecture if node.pretrained else f'{node.architecture}_{node.pk}'
            nodes[key], codes[key] = node, code
        dft_code, options = None, None
        if dft:
            try:
                dft_code = orm.load_code(setup_label('qe', 'pw', computer))
            except NotExistent as exception:
                raise ValueError(f'no pw.x code: run `aiida-mlffdiff setup` ({exception}).') from exception
            if mpi > 1:
                options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': mpi}, 'withmpi': True}
                if os.geteuid() == 0:  # Open MPI refuses root unless told (containers, CI)
                    options['environment_variables'] = {
                        'OMPI_ALLOW_RUN_AS_ROOT': '1',
                        'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1',
                    }
        builder = ForceConstantsWorkChain.get_builder_from_protocol(
            load_structure(structure), repetitions, models=nodes, model_codes=codes, dft_code=dft_code,
            functional=functional, protocol=protocol, dft_options=options, pseudo_family=DEFAULT_PSEUDO_FAMILY,
            parameters={'orders': [int(order) for order in orders.split(',')], 'distance_A': distance,
                        'number_of_snapshots': snapshots, 'fc3_cutoff_A': fc3_cutoff},
        )  # fmt: skip
    except ValueError as exception:
        echo.echo_critical(str(exception))
    _check_and_launch(ForceConstantsWorkChain, builder, daemon, 'aiida-mlffdiff plot {pk}')


@launch.command('benchmark')
@click.option(
    '-m', '--model', 'models', multiple=True, required=True, help='pk/UUID or a pretrained name (repeatable).'
)
@click.option('--reference-set', help='pk/UUID of the DFT TrainingSet the forces are judged against.')
@click.option('-s', '--structure', help=f'MD cell: pk/UUID, a file, or {" | ".join(SHIPPED)}.')
@click.option('-T', '--temperatures', default='', help='MD temperatures (K), comma-separated.')
@click.option('--mobile', default='Li', show_default=True, help='Mobile species of the MD.')
@click.option('-p', '--protocol', default='moderate', show_default=True, help='MD protocol: fast | moderate | precise.')
@click.option(
    '--reference-d', 'references', multiple=True,
    help='A reference D per temperature: T=PK (the diffusion result of `analyze --reference-code`), repeatable.',
)  # fmt: skip
@click.option('-Y', '--computer', default='localhost', show_default=True, help='Computer of the engine codes.')
@click.option('-d', '--daemon', is_flag=True, help='Submit to the daemon and return (else run here).')
@decorators.with_dbenv()
def launch_benchmark(models, reference_set, structure, temperatures, mobile, protocol, references, computer, daemon):
    """Several models against DFT forces (per species, per configuration type) and against a reference D."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from ..data.training_set import TrainingSet
    from ..workchains.benchmark import BenchmarkWorkChain, model_label

    try:
        nodes, codes = {}, {}
        for name in models:
            node, code = _model_and_code(name, lambda node: node.engine, computer)
            label = model_label(name if node.pretrained else f'{node.architecture}_{node.pk}')
            nodes[label], codes[label] = node, code
        dataset = None
        if reference_set:
            try:
                dataset = orm.load_node(reference_set)
            except NotExistent as exception:
                raise ValueError(f'no reference set {reference_set!r}: {exception}') from exception
            if not isinstance(dataset, TrainingSet):
                raise ValueError(
                    f'--reference-set {reference_set} is a {dataset.__class__.__name__}, not a TrainingSet.'
                )
        reference_d = {}
        for item in references:
            temperature, _, pk = item.partition('=')
            try:
                reference_d[float(temperature)] = orm.load_node(pk.strip())
            except (ValueError, NotExistent) as exception:
                raise ValueError(f'--reference-d takes T=PK, got {item!r}: {exception}') from exception
        values = _temperatures(temperatures) if temperatures else None
        builder = BenchmarkWorkChain.get_builder_from_protocol(
            nodes, codes, reference_set=dataset, structure=load_structure(structure) if structure else None,
            temperatures=values, protocol=protocol, overrides={'md': {'mobile_species': mobile}},
            reference_diffusion=reference_d or None,
        )  # fmt: skip
    except ValueError as exception:
        echo.echo_critical(str(exception))
    _check_and_launch(BenchmarkWorkChain, builder, daemon, 'aiida-mlffdiff report {pk}')


def _integers(text: str, option: str) -> list[int] | None:
    """A comma-separated list of integers (None when empty), or ValueError naming the option."""
    try:
        return [int(item) for item in text.split(',') if item.strip()] or None
    except ValueError:
        raise ValueError(f'{option} takes comma-separated integers, got {text!r}.') from None


@launch.command('scaling')
@click.argument('model')
@click.option('-s', '--structure', required=True, help=f'Cell to repeat: pk/UUID, a file, or {" | ".join(SHIPPED)}.')
@click.option('--atoms', default='', help='Target atom counts, comma-separated [the cell, 8×, 32×, 64×].')
@click.option('--engine', type=click.Choice(['ase', 'torchsim', 'lammps']), default='ase', show_default=True)
@click.option('--replicas-per-batch', default='', help='torchsim: replicas per worker at the probe size, e.g. 1,4,16.')
@click.option('--threads', default='', help='Threads per worker at the probe size, e.g. 1,2.')
@click.option('-Y', '--computer', default='localhost', show_default=True, help='Computer of the engine code.')
@click.option('-d', '--daemon', is_flag=True, help='Submit to the daemon and return (else run here).')
@decorators.with_dbenv()
def launch_scaling(model, structure, atoms, engine, replicas_per_batch, threads, computer, daemon):
    """Measure MODEL's MD cost against the number of atoms on COMPUTER (for `aiida-mlffdiff plan`)."""
    from ..calculations.md_ensemble import engine_environment
    from ..workchains.scaling import ScalingWorkChain

    try:
        if engine == 'lammps':  # DeePMD through pair_style deepmd: the LAMMPS build of the lammps environment
            node, code = _model_and_code(model, lambda node: 'lammps', computer, 'lmp')
        else:
            node, code = _model_and_code(model, lambda node: engine_environment(node, engine), computer)
        targets, batches, thread_counts = (_integers(text, name) for text, name in (
            (atoms, '--atoms'), (replicas_per_batch, '--replicas-per-batch'), (threads, '--threads'),
        ))  # fmt: skip
        builder = ScalingWorkChain.get_builder_from_model(
            node, load_structure(structure), code, engine=engine, atoms=targets, replicas_per_batch=batches,
            threads_per_worker=thread_counts,
        )  # fmt: skip
    except ValueError as exception:
        echo.echo_critical(str(exception))
    _check_and_launch(ScalingWorkChain, builder, daemon, f'aiida-mlffdiff plan --model {node.pk} … | plot {{pk}}')
