"""``aiida-mlffdiff demo``: the full study on the embedded profile (``--synthetic``: the analysis of known D(T))."""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import click
from aiida.cmdline.utils import decorators, echo
from aiida.orm import Dict, load_node

from . import cmd_root
from .utils import format_value


@cmd_root.command('demo')
@click.option(
    '-o',
    '--output-dir',
    type=click.Path(file_okay=False, path_type=Path),
    default=Path('demo_output'),
    show_default=True,
    help='Where the plots (and synthetic trajectories) go.',
)
@click.option(
    '-p',
    '--protocol',
    type=click.Choice(['fast', 'moderate']),
    default='moderate',
    show_default=True,
    help='Study protocol: moderate is the demo (≈ 14 min on 2 cores), fast a smoke test.',
)
@click.option('-T', '--temperatures', default='700,900', show_default=True, help='MD temperatures (K).')
@click.option('--synthetic', is_flag=True, help='Only analyse synthetic trajectories with known D(T) (≈ 30 s).')
@decorators.with_dbenv()
def demo(output_dir: Path, protocol: str, temperatures: str, synthetic: bool):
    """The seed study in miniature: QE PBE and HSE06 → MACE, NequIP, DeePMD → D(T), Ea, σ(300 K) per model."""
    if synthetic:
        synthetic_demo(output_dir)
        return
    study_demo(output_dir, protocol, [float(t) for t in temperatures.split(',')])


@contextlib.contextmanager
def printed_tracebacks_to(path: Path) -> Iterator[list[int]]:
    """Send what ``traceback.print_exc`` prints to ``path`` instead of the terminal; yields ``[count]``.

    aiida-quantumespresso's pw.x parser prints a traceback for every hybrid-functional SCF (it looks for an
    'estimated scf accuracy' line that the EXX loop does not print) and stores the warning in the node's
    ``output_parameters``; 24 of them would bury the demo's reports.
    """
    count = [0]
    original = traceback.print_exc
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('w', encoding='utf-8') as handle:

        def to_file(limit=None, file=None, chain=True):
            count[0] += 1
            original(limit=limit, file=handle, chain=chain)

        traceback.print_exc = to_file
        try:
            yield count
        finally:
            traceback.print_exc = original


def study_demo(output_dir: Path, protocol: str, temperatures: list[float]) -> None:
    """Run the study in this process (reports stream to the terminal), then print the table, plots and commands."""
    from ..structures.argyrodite import li6ps5cl_structure
    from ..study_report import format_table, study_rows
    from .launch import study_builder_and_launch
    from .plot import plot_study

    structure = li6ps5cl_structure(cell='primitive').store()
    echo.echo_report(
        f'study ({protocol}): Li6PS5Cl 13-atom cell StructureData<{structure.pk}>, PBE and HSE06 (Quantum ESPRESSO) '
        f'× MACE, NequIP, DeePMD, MD at {temperatures} K'
    )
    started = time.perf_counter()
    tracebacks = output_dir / 'parser-tracebacks.log'
    with printed_tracebacks_to(tracebacks) as printed:
        node = study_builder_and_launch(
            structure=structure,
            md_structure=None,
            functionals=['pbe', 'hse06'],
            architectures=['mace', 'nequip', 'deepmd'],
            pretrained=[],
            temperatures=temperatures,
            protocol=protocol,
            dft_engine='qe',
            dft_code=None,
            pseudo_family=None,
            potential_family=None,
            computer='localhost',
            daemon=False,
        )
    wall = time.perf_counter() - started
    echo.echo('')
    rows = study_rows(node)
    echo.echo(f'MlffDiffusionStudyWorkChain<{node.pk}> [{node.exit_status}] in {wall / 60:.1f} min wall')
    if printed[0]:
        echo.echo(f'({printed[0]} tracebacks of the pw.x parser on hybrid-functional output, harmless: {tracebacks})')
    echo.echo(format_table(rows) if rows else 'no finished row')
    if 'comparison' in node.outputs:
        for label, reason in node.outputs.comparison['failed'].items():
            echo.echo_warning(f'{label}: {reason}')
    plots = plot_study(node, output_dir) if rows else []
    echo.echo('')
    echo.echo('plots: ' + (', '.join(str(p) for p in plots) or 'none'))
    echo.echo(
        'what the numbers mean: tiny models trained on 24 configurations, a few ps of MD on a 13-atom cell — they show '
        'the chain and its provenance, not converged Li6PS5Cl physics (see README, "The demo").'
    )
    prefix = f'AIIDA_PATH={os.environ["AIIDA_PATH"]} ' if 'AIIDA_PATH' in os.environ else ''
    echo.echo('\ninspect the provenance:')
    for command in (
        'verdi process list -a -p 1',
        f'verdi process report {node.pk}',
        f'verdi process status {node.pk}',
        f'aiida-mlffdiff report {node.pk} --csv',
        f'verdi node graph generate --process-in --process-out {node.pk}  # the study and its sub-processes',
    ):
        echo.echo(f'  {prefix}{command}')
    if not node.is_finished_ok:
        raise SystemExit(1)


def synthetic_demo(output_dir: Path) -> None:
    """Analyse a synthetic Li6PS5Cl-sized trajectory set with known D(T) through AiiDA, end to end."""
    from ..analysis import d_unresolved
    from ..demo import DemoSettings, write_demo_trajectories
    from ..functions.arrhenius import arrhenius_line, fit_arrhenius
    from ..plotting import plot_arrhenius
    from .analyze import analyze_files
    from .plot import plot_node

    settings = DemoSettings()
    started = time.perf_counter()
    echo.echo_report(
        f'writing {settings.n_replicas} synthetic XDATCAR.gz replicas at each of {settings.temperatures_K} K '
        f'({settings.n_frames} frames every {settings.frame_interval_fs:g} fs) into {output_dir}/'
    )
    files = write_demo_trajectories(output_dir / 'trajectories', settings)
    results = {}
    for temperature, paths in files.items():
        results[temperature] = analyze_files(
            paths, 'vasp-xdatcar', species='Li', frame_interval_fs=settings.frame_interval_fs, temperature_K=temperature
        )
        result = results[temperature]
        shown = 'unresolved' if d_unresolved(result) else format_value(result['D_cm2_s'], result['D_err_cm2_s'])
        echo.echo_report(f'{temperature:g} K: D = {shown} cm²/s (compute_diffusion<{result["calculation_pks"][1]}>)')
    diffusion_nodes = {f'T_{t:.0f}K': load_node(r['pk']) for t, r in results.items()}
    arrhenius, call = fit_arrhenius.run_get_node(
        parameters=Dict({'temperature_K': settings.extrapolate_to_K}), **diffusion_nodes
    )
    if not call.is_finished_ok:
        echo.echo_critical(f'fit_arrhenius<{call.pk}> failed: {call.exit_message}')
    fit = arrhenius.get_dict()

    echo.echo('')
    columns = ('T (K)', 'D (cm²/s)', 'true D', 'dev/SE', 'window (ps)', 'σ (mS/cm)', 'MSD pk', 'D pk')
    widths = (6, 22, 9, 7, 12, 10, 7, 6)
    header = ' '.join(f'{name:>{width}}' for name, width in zip(columns, widths, strict=True))
    echo.echo(header)
    echo.echo('-' * len(header))
    for temperature, result in results.items():
        truth = settings.true_d(temperature)
        reason = d_unresolved(result)
        cells = (
            f'{temperature:.0f}',
            'unresolved' if reason else format_value(result['D_cm2_s'], result['D_err_cm2_s']),
            f'{truth:.3g}',
            f'{(result["D_cm2_s"] - truth) / result["D_err_cm2_s"]:+.2f}',
            f'{result["fit_start_ps"]:.1f}–{result["fit_end_ps"]:.1f}',
            f'{result["sigma_mS_cm"]:.3g}',
            str(result['msd_pk']),
            str(result['pk']),
        )
        echo.echo(' '.join(f'{cell:>{width}}' for cell, width in zip(cells, widths, strict=True)))
        if reason:
            echo.echo_warning(f'{temperature:g} K: D unresolved: {reason}')
        for warning in result['warnings']:
            echo.echo_warning(f'{temperature:g} K: {warning}')
    echo.echo('')
    echo.echo(f'Arrhenius (Dict<{arrhenius.pk}>): ' + arrhenius_line(fit)[len('Arrhenius: ') :])
    echo.echo(
        f'true: Ea = {settings.activation_energy_eV} eV, D({settings.extrapolate_to_K:g} K) = '
        f'{settings.true_d(settings.extrapolate_to_K):.3g} cm²/s; fitted D0 = {fit["D0_cm2_s"]:.3g} cm²/s'
    )

    plots = [plot_arrhenius({'synthetic Li': fit}, output_dir / 'arrhenius.png')]
    plots += [plot_node(load_node(r['pk']), output_dir / f'msd_{t:.0f}K.png') for t, r in results.items()]
    echo.echo('')
    echo.echo('plots: ' + ', '.join(str(p) for p in plots))
    echo.echo(f'wall time {time.perf_counter() - started:.1f} s')
    prefix = f'AIIDA_PATH={os.environ["AIIDA_PATH"]} ' if 'AIIDA_PATH' in os.environ else ''
    echo.echo('\ninspect the provenance:')
    for command in (
        'verdi process list -a -p 1',
        f'verdi process show {call.pk}',
        f'verdi node show {arrhenius.pk}',
        f'verdi node graph generate --process-in --descendant-depth 0 -f png {arrhenius.pk}  # full lineage',
        f'aiida-mlffdiff plot {results[settings.temperatures_K[0]]["pk"]}',
    ):
        echo.echo(f'  {prefix}{command}')
