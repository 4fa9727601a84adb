"""``aiida-mlffdiff plot PK``: MSD or Arrhenius plot (PNG) of a stored result."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo
from aiida.orm import ArrayData, Dict

from ..data.msd import MsdData
from . import cmd_root


def diffusion_outputs(node) -> tuple[Dict, ArrayData]:
    """The ``diffusion`` Dict and ``pooled_msd`` of the compute_diffusion call that made ``node``."""
    creator = node.creator
    if creator is None or creator.process_label != 'compute_diffusion':
        raise ValueError(f'node {node.pk} is not an output of compute_diffusion.')
    outputs = creator.outputs
    return outputs.diffusion, outputs.pooled_msd


def plot_node(node, output: Path) -> Path:
    """Write the plot that fits ``node``: Arrhenius for an Arrhenius result, MSD for the rest."""
    from ..plotting import plot_arrhenius, plot_msd  # matplotlib is only needed here

    if isinstance(node, Dict) and 'Ea_eV' in node.get_dict():
        return plot_arrhenius({f'Dict<{node.pk}>': node.get_dict()}, output)
    if isinstance(node, MsdData):
        replicas = node.msd_A2
        summary = {'species': node.species, 'temperature_K': node.temperature_K}
        users = [
            link.node for link in node.base.links.get_outgoing().all() if link.node.process_label == 'compute_diffusion'
        ]
        if users:
            summary = users[-1].outputs.diffusion.get_dict()
        return plot_msd(node.time_ps, replicas.mean(axis=0), summary, output, replicas_A2=replicas)
    diffusion, pooled = diffusion_outputs(node)
    arrays = {name: pooled.get_array(name) for name in pooled.get_arraynames()}
    replicas = None
    msd_inputs = [
        link.node for link in diffusion.creator.base.links.get_incoming().all() if isinstance(link.node, MsdData)
    ]
    if msd_inputs:
        import numpy as np

        replicas = np.concatenate([m.msd_A2 for m in msd_inputs])
    return plot_msd(
        arrays['time_ps'], arrays['msd_A2'], diffusion.get_dict(), output, arrays.get('msd_sem_A2'), replicas
    )


@cmd_root.command('plot')
@arguments.NODE('node')
@click.option(
    '-o', '--output', type=click.Path(dir_okay=False, path_type=Path), help='PNG path [default: plot_<pk>.png].'
)
@decorators.with_dbenv()
def plot(node, output):
    """Plot NODE: an Arrhenius result (Arrhenius plot), a diffusion result, pooled MSD or MsdData (MSD plot)."""
    output = output or Path(f'plot_{node.pk}.png')
    try:
        path = plot_node(node, output)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    echo.echo_success(f'wrote {path}')
