"""``aiida-mlffdiff plot PK``: MSD or Arrhenius plot (PNG) of a stored result."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo
from aiida.orm import ArrayData, CalcFunctionNode, Dict, Node

from ..data.msd import MsdData
from . import cmd_root

PLOTTABLE = (
    'a study (MlffDiffusionStudyWorkChain), a ForceConstantsWorkChain, a BenchmarkWorkChain, a LocalityWorkChain or '
    'its locality Dict, '
    'a ScalingWorkChain, a '
    'compute_diffusion or '
    'fit_arrhenius call, its output Dict, a pooled MSD ArrayData or an MsdData node'
)


def _creator_label(node: Node) -> str | None:
    creator = getattr(node, 'creator', None)
    return creator.process_label if creator is not None else None


def _result_of(call: CalcFunctionNode) -> Node:
    """The result node of a finished compute_diffusion or fit_arrhenius call."""
    if not call.is_finished_ok:
        raise ValueError(f'{call.process_label}<{call.pk}> did not finish ok [{call.exit_status}]: nothing to plot.')
    return call.outputs.diffusion if call.process_label == 'compute_diffusion' else call.outputs.result


def _msd_plot_of_diffusion(diffusion: Dict, output: Path) -> Path:
    from ..plotting import plot_msd

    call = diffusion.creator
    pooled = call.outputs.pooled_msd
    arrays = {name: pooled.get_array(name) for name in pooled.get_arraynames()}
    inputs = [link.node for link in call.base.links.get_incoming().all() if isinstance(link.node, MsdData)]
    replicas = np.concatenate([m.msd_A2 for m in inputs]) if inputs else None
    return plot_msd(
        arrays['time_ps'], arrays['msd_A2'], diffusion.get_dict(), output, arrays.get('msd_sem_A2'), replicas
    )


def plot_study(study: Node, directory: Path) -> list[Path]:
    """``arrhenius.png`` (every row with an Arrhenius fit, one figure) and ``msd_<row>_<T>.png`` per row and T.

    Rows are found through the provenance graph (see :mod:`aiida_mlffdiff.study_report`).
    """
    from ..plotting import plot_arrhenius
    from ..study_report import STUDY_LABEL, diffusion_chains

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chains = diffusion_chains(study)
    if not chains:
        raise ValueError(f'{STUDY_LABEL}<{study.pk}> has no finished diffusion row to plot yet.')
    paths, series = [], {}
    for label, chain in chains.items():
        if 'arrhenius' in chain.outputs:
            series[label] = chain.outputs.arrhenius.get_dict()
        for temperature, diffusion in chain.outputs.diffusion.items():
            paths.append(_msd_plot_of_diffusion(diffusion, directory / f'msd_{label}_{temperature}.png'))
    if series:
        paths.insert(0, plot_arrhenius(series, directory / 'arrhenius.png'))
    paths += _training_choice_plots(study, chains, series, directory)
    return paths


def _training_choice_plots(study: Node, chains: dict, series: dict, directory: Path) -> list[Path]:
    """With the training-choice axes: learning curves, force-error histograms of the cheap levels, one Arrhenius
    plot per reference level and force RMSE against |ln D/D_ref|."""
    from ..plotting import plot_arrhenius, plot_label_histograms, plot_learning_curves, plot_rmse_vs_transport
    from ..study_report import study_rows, transport_correlation

    rows = study_rows(study)
    paths = []
    if any(row.get('n_train') is not None for row in rows) and len({row.get('n_train') for row in rows}) > 1:
        correlation = transport_correlation(rows)
        if correlation.get('temperature_K') is not None:
            paths.append(plot_learning_curves(rows, correlation['temperature_K'], directory / 'learning_curves.png'))
    if 'label_histograms' in study.outputs:
        histograms = {
            label: {name: node.get_array(name) for name in node.get_arraynames()}
            for label, node in study.outputs.label_histograms.items()
        }
        if histograms:
            paths.append(plot_label_histograms(histograms, directory / 'label_errors.png'))
    levels = sorted({row['reference_level'] for row in rows if row.get('reference_level')})
    for level in levels if len(levels) > 1 else []:
        chosen = {row['label']: series.get(row['label']) for row in rows if row.get('reference_level') == level}
        chosen = {label: fit for label, fit in chosen.items() if fit is not None}
        if chosen:
            paths.append(plot_arrhenius(chosen, directory / f'arrhenius_{level}.png'))
    if any(row.get('force_rmse_meV_A') is not None for row in rows):
        paths.append(plot_rmse_vs_transport(transport_correlation(rows), directory / 'rmse_vs_transport.png'))
    return paths


def force_constant_sources(chain: Node) -> tuple[dict[str, dict], dict[str, dict]]:
    """The force constants and phonons of every source of a finished ForceConstantsWorkChain, and its metrics."""
    if 'phonons' not in chain.outputs or 'dft' not in chain.outputs.phonons:
        raise ValueError(
            f'ForceConstantsWorkChain<{chain.pk}> has no DFT force constants to compare with (state '
            f'{chain.process_state.value}, exit status {chain.exit_status}).'
        )
    sources = {}
    for key, phonons in chain.outputs.phonons.items():
        entry = {name: phonons.get_array(name) for name in phonons.get_arraynames()}
        entry['band_segment_lengths'] = phonons.base.attributes.get('band_segment_lengths')
        entry['band_labels'] = phonons.base.attributes.get('band_labels')
        entry['fc2'] = chain.outputs.fc2[key].force_constants
        fc3 = chain.outputs.fc3.get(key) if 'fc3' in chain.outputs else None
        entry['fc3'] = fc3.get_array('fc3_eV_A3') if fc3 is not None else None
        sources[key] = entry
    sources = {'dft': sources.pop('dft'), **sources}
    metrics = (
        {key: node.get_dict() for key, node in chain.outputs.metrics.items()} if 'metrics' in chain.outputs else {}
    )
    return sources, metrics


def plot_node(node: Node, output: Path) -> Path:
    """Write the plot that fits ``node`` (see :data:`PLOTTABLE`): Arrhenius for an Arrhenius fit, else MSD.

    :raises ValueError: for any other node, or an output path in a directory that does not exist.
    """
    from ..plotting import (
        plot_arrhenius,
        plot_benchmark,
        plot_force_constants,
        plot_locality,
        plot_msd,
        plot_scaling,
    )

    output = Path(output)
    if not output.parent.is_dir():
        raise ValueError(f'cannot write {output}: the directory {output.parent} does not exist.')
    if getattr(node, 'process_label', None) == 'ForceConstantsWorkChain':
        return plot_force_constants(*force_constant_sources(node), output)
    if getattr(node, 'process_label', None) == 'BenchmarkWorkChain':
        if 'comparison' not in node.outputs:
            raise ValueError(f'BenchmarkWorkChain<{node.pk}> has no comparison (state {node.process_state}).')
        return plot_benchmark(node.outputs.comparison.get_dict(), output)
    if getattr(node, 'process_label', None) == 'LocalityWorkChain':
        if 'locality' not in node.outputs:
            raise ValueError(f'LocalityWorkChain<{node.pk}> has no locality output (state {node.process_state}).')
        node = node.outputs.locality
    if getattr(node, 'process_label', None) == 'ScalingWorkChain':
        if 'scaling' not in node.outputs:
            raise ValueError(f'ScalingWorkChain<{node.pk}> has no scaling output (state {node.process_state}).')
        label = f'{node.inputs.model.describe()}, {node.inputs.parameters["engine"]}'
        varied = [node.outputs[kind].get_dict() for kind in ('batching', 'threading') if kind in node.outputs]
        return plot_scaling({label: node.outputs.scaling.get_dict()}, output, {label: varied})
    if isinstance(node, Dict) and _creator_label(node) == 'locality_profile':
        model = node.creator.caller.inputs.model if node.creator.caller is not None else None
        label = model.describe() if model is not None else f'Dict<{node.pk}>'
        return plot_locality({label: node.get_dict()}, output)
    if isinstance(node, CalcFunctionNode) and node.process_label in ('compute_diffusion', 'fit_arrhenius'):
        node = _result_of(node)
    label = _creator_label(node)
    if isinstance(node, Dict) and label == 'fit_arrhenius':
        return plot_arrhenius({f'Dict<{node.pk}>': node.get_dict()}, output)
    if isinstance(node, Dict | ArrayData) and label == 'compute_diffusion':
        return _msd_plot_of_diffusion(node.creator.outputs.diffusion, output)
    if isinstance(node, MsdData):
        calls = [
            link.node
            for link in node.base.links.get_outgoing().all()
            if link.node.process_label == 'compute_diffusion' and link.node.is_finished_ok
        ]
        if calls:
            return _msd_plot_of_diffusion(calls[-1].outputs.diffusion, output)
        summary = {'species': node.species, 'temperature_K': node.temperature_K}
        return plot_msd(node.time_ps, node.msd_A2.mean(axis=0), summary, output, replicas_A2=node.msd_A2)
    raise ValueError(f'cannot plot {node.__class__.__name__}<{node.pk}>: give {PLOTTABLE}.')


@cmd_root.command('plot')
@arguments.NODE('node')
@click.option(
    '-o',
    '--output',
    type=click.Path(path_type=Path),
    help='PNG path [default: plot_<pk>.png]; for a study, a directory [default: plots_<pk>/].',
)
@decorators.with_dbenv()
def plot(node, output):
    """Plot NODE: a study (Arrhenius of all rows + MSDs), force constants against DFT, a locality test, an Arrhenius
    fit, or a diffusion result / MSD node."""
    from ..study_report import STUDY_LABEL

    try:
        if getattr(node, 'process_label', None) == STUDY_LABEL:
            paths = plot_study(node, output or Path(f'plots_{node.pk}'))
        else:
            paths = [plot_node(node, output or Path(f'plot_{node.pk}.png'))]
    except ValueError as exception:
        echo.echo_critical(str(exception))
    for path in paths:
        echo.echo_success(f'wrote {path}')
