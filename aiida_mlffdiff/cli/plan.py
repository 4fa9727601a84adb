"""``aiida-mlffdiff plan``: the wall time, core-hours and storage of an MD protocol from a model's measured scaling."""

from __future__ import annotations

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_root
from .utils import echo_json


@cmd_root.command('plan')
@click.option('--model', 'model_id', required=True, help='pk/UUID of the MlffModel (or a pretrained name).')
@click.option('--atoms', type=int, required=True, help='Atoms per replica.')
@click.option('--replicas', type=int, default=300, show_default=True, help='Replicas per temperature.')
@click.option('--temperatures', type=int, default=1, show_default=True, help='Number of temperatures.')
@click.option('--production-ps', type=float, default=70.0, show_default=True, help='Production per replica (ps).')
@click.option('--equilibration-ps', type=float, default=0.0, show_default=True, help='Equilibration (ps).')
@click.option('--timestep-fs', type=float, default=2.0, show_default=True, help='MD timestep (fs).')
@click.option('--sampling-fs', type=float, default=None, help='Frame interval (fs) [10 timesteps].')
@click.option('--parallel', type=int, default=1, show_default=True, help='Replicas running at once.')
@click.option('--computer', default='localhost', show_default=True, help='Computer the scaling was measured on.')
@click.option('--engine', default=None, help='MD engine the scaling was measured with [the newest of any].')
@click.option('--cores-per-node', type=int, default=None, help="For node-hours [the measured machine's cores].")
@click.option('--json', 'as_json', is_flag=True, help='Print the plan as JSON.')
@decorators.with_dbenv()
def plan_command(
    model_id, atoms, replicas, temperatures, production_ps, equilibration_ps, timestep_fs, sampling_fs, parallel,
    computer, engine, cores_per_node, as_json,
):  # fmt: skip
    """Predict the cost of REPLICAS × PRODUCTION-PS of MD at ATOMS atoms with MODEL on COMPUTER, from the model's
    ScalingWorkChain measured there (one replica per process, the process-time cost per step)."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from ..calculations.evaluate import PRETRAINED_MODELS, pretrained_model
    from ..data.mlff_model import MlffModel
    from ..planner import measured_scaling, plan

    for name, value in (
        ('atoms', atoms),
        ('replicas', replicas),
        ('parallel', parallel),
        ('temperatures', temperatures),
    ):
        if value < 1:
            echo.echo_critical(f'--{name} must be at least 1, got {value}.')
    if production_ps <= 0 or timestep_fs <= 0 or equilibration_ps < 0:
        echo.echo_critical('--production-ps and --timestep-fs must be positive, --equilibration-ps not negative.')
    try:
        model = pretrained_model(model_id) if model_id in PRETRAINED_MODELS else orm.load_node(model_id)
    except (NotExistent, ValueError) as exception:
        echo.echo_critical(f'no model {model_id!r}: {exception}')
    if not isinstance(model, MlffModel):
        echo.echo_critical(f'node {model_id} is a {model.__class__.__name__}, not an MlffModel.')
    found = measured_scaling(model, computer, engine)
    if found is None:
        with_engine = f' with the {engine} engine' if engine else ''
        echo.echo_critical(
            f'{model.describe()} has no scaling measured on {computer!r}{with_engine}: run `aiida-mlffdiff launch '
            f'scaling {model.pk} --structure ... --computer {computer}{" --engine " + engine if engine else ""}` first.'
        )
    chain, scaling = found
    hardware = scaling.get('hardware', {})
    cores = cores_per_node or hardware.get('logical_cores')
    if cores is not None and cores < 1:
        echo.echo_critical(f'--cores-per-node must be at least 1, got {cores}.')
    result = plan(
        scaling, atoms, replicas=replicas, production_ps=production_ps, timestep_fs=timestep_fs,
        equilibration_ps=equilibration_ps, sampling_interval_fs=sampling_fs, parallel_replicas=parallel,
        temperatures=temperatures,
    )  # fmt: skip
    result.update(scaling_pk=chain.pk, computer=computer, model=model.describe(), engine=scaling.get('engine'))
    result.update(cores_per_node=cores, node_hours=result['core_hours'] / cores if cores else None)
    if as_json:
        echo_json(result)
        return
    echo.echo(
        f'{model.describe()}, {scaling.get("engine", "?")} engine, on {computer} ({hardware.get("cpu_model", "?")}), '
        f'ScalingWorkChain<{chain.pk}>:'
    )
    echo.echo(
        f'  cost per step at {atoms} atoms: {result["seconds_per_step"] * 1000:.4g} ms per replica '
        f'({result["size_range"]}: measured {result["measured_atoms"][0]}–{result["measured_atoms"][1]} atoms, '
        f'log-log slope {scaling["loglog_slope"]:.2f})'
    )
    echo.echo(
        f'  {result["replica_runs"]} replica runs × {result["steps_per_replica"]:.4g} steps: '
        f'{result["process_hours"]:.4g} process-hours, wall {result["wall_hours"]:.4g} h with {parallel} at once, '
        f'{result["core_hours"]:.4g} core-hours'
        + (f', {result["node_hours"]:.4g} node-hours ({cores} cores per node)' if cores else '')
    )
    echo.echo(f'  trajectories (all atoms, float64): {result["storage_bytes"] / 1e9:.3g} GB')
    if result['size_range'] == 'extrapolated':
        echo.echo_warning(f'{atoms} atoms is beyond the largest measured size: extrapolated at least linearly.')
