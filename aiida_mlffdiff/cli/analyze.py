"""``aiida-mlffdiff analyze``: trajectory files → TrajectoryData → MsdData → D ± error, all as AiiDA nodes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from aiida.cmdline.utils import decorators, echo
from aiida.orm import Dict

from ..analysis import AnalysisError, d_unresolved
from ..analysis.ensemble import ESTIMATORS
from ..data.trajectories import FORMATS, read_trajectory, trajectory_node
from ..functions.diffusion import compute_diffusion, diffusion_results
from ..functions.msd import compute_msd_data, msd_from_trajectories
from . import cmd_root
from .utils import echo_json, format_value


def analyze_files(
    paths: Sequence[str | Path],
    fmt: str,
    *,
    species: str,
    frame_interval_fs: float,
    mode: str = 'replicas',
    temperature_K: float | None = None,
    window: tuple[float, float] | None = None,
    estimator: str = 'auto',
    lammps_types: list[str] | None = None,
    reference: dict | None = None,
) -> dict:
    """Import trajectory files as nodes and run ``msd_from_trajectories`` and ``compute_diffusion``.

    Everything is checked on unstored data first, so bad input raises ``ValueError`` (``AnalysisError``)
    and stores nothing.

    :param reference: the files are a reference run (AIMD): what it is, stored on every trajectory as the attribute
        ``mlffdiff_reference`` (:func:`reference_metadata`: code, functional, temperature in K, time step in fs,
        source); the D result is what a benchmark takes as ``reference_diffusion``.

    :return: the diffusion result with the pks of the nodes created.
    """
    if reference is not None:
        reference = reference_metadata(**reference)
        if temperature_K is None:
            temperature_K = reference['temperature_K']
        elif temperature_K != reference['temperature_K']:
            raise ValueError(
                f'the temperature {temperature_K} K and the reference run at {reference["temperature_K"]} K.'
            )
    parts = [read_trajectory(path, fmt, lammps_types) for path in paths]
    msd_parameters = {'species': species, 'frame_interval_fs': frame_interval_fs, 'mode': mode}
    if temperature_K is not None:
        msd_parameters['temperature_K'] = temperature_K
    diffusion_parameters = {'estimator': estimator}
    if window is not None:
        diffusion_parameters.update(fit_start_ps=window[0], fit_end_ps=window[1])
    diffusion_results([compute_msd_data(parts, msd_parameters)], diffusion_parameters)  # dry run: validate all

    # Unstored: the calcfunction stores them with its own node, so no trajectory is left without the process that
    # read it (before, a lock or Ctrl-C between the two left orphaned trajectories).
    trajectories = {
        f'part_{i:03d}': trajectory_node(part, path, fmt)
        for i, (part, path) in enumerate(zip(parts, paths, strict=True))
    }
    if reference is not None:
        for node in trajectories.values():
            node.base.attributes.set('mlffdiff_reference', reference)
    msd, msd_call = msd_from_trajectories.run_get_node(parameters=Dict(msd_parameters), **trajectories)
    if not msd_call.is_finished_ok:
        raise AnalysisError(
            f'msd_from_trajectories<{msd_call.pk}> failed [{msd_call.exit_status}]: {msd_call.exit_message}'
        )
    outputs, call = compute_diffusion.run_get_node(parameters=Dict(diffusion_parameters), msd=msd)
    if not call.is_finished_ok:
        raise AnalysisError(f'compute_diffusion<{call.pk}> failed [{call.exit_status}]: {call.exit_message}')
    result = outputs['diffusion'].get_dict()
    result.update(
        pk=outputs['diffusion'].pk,
        pooled_msd_pk=outputs['pooled_msd'].pk,
        msd_pk=msd.pk,
        trajectory_pks=[node.pk for node in trajectories.values()],
        calculation_pks=[msd_call.pk, call.pk],
    )
    return result


def reference_metadata(
    *, code: str, functional: str, temperature_K: float, timestep_fs: float | None = None, source: str = ''
) -> dict:
    """What a reference (AIMD) run is: the code (e.g. VASP), functional, temperature (K), MD time step (fs), source.

    :raises ValueError: a blank code or functional, a temperature or time step that is not positive.
    """
    if not str(code).strip() or not str(functional).strip():
        raise ValueError('a reference run needs its code and functional (e.g. --reference-code VASP --functional PBE).')
    if not isinstance(temperature_K, int | float) or not temperature_K > 0:
        raise ValueError(f'a reference run needs its temperature in K (> 0), got {temperature_K!r}.')
    if timestep_fs is not None and not timestep_fs > 0:
        raise ValueError(f'the time step must be positive (fs), got {timestep_fs!r}.')
    return {
        'code': str(code).strip(),
        'functional': str(functional).strip(),
        'temperature_K': float(temperature_K),
        'timestep_fs': None if timestep_fs is None else float(timestep_fs),
        'source': str(source).strip(),
    }


@cmd_root.command('analyze')
@click.argument('files', nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    '-f', '--format', 'fmt', type=click.Choice(sorted(FORMATS)), required=True, help='Trajectory file format.'
)
@click.option('-s', '--species', default='Li', show_default=True, help='Mobile species.')
@click.option('--frame-interval-fs', type=float, required=True, help='Time between stored frames (fs).')
@click.option('--fit-start-ps', type=float, help='Start of the Einstein fit window (ps); automatic if omitted.')
@click.option('--fit-end-ps', type=float, help='End of the Einstein fit window (ps); automatic if omitted.')
@click.option(
    '--consecutive/--replicas',
    default=False,
    help='Files are parts of one continued run (e.g. VASP restarts), or independent replicas [default].',
)
@click.option('-T', '--temperature', type=float, help='Temperature of the run (K), for σ and Arrhenius fits.')
@click.option('--estimator', type=click.Choice(ESTIMATORS), default='auto', show_default=True, help='Estimator of D.')
@click.option('--lammps-types', help='Comma-separated symbols of LAMMPS atom types 1, 2, ... (dumps without elements).')
@click.option(
    '--reference-code',
    help='The files are a reference (AIMD) run of this code (e.g. VASP, QE): stored with its metadata for benchmarks.',
)
@click.option('--functional', help='Reference run: the DFT functional (e.g. PBE, r2SCAN).')
@click.option('--timestep-fs', type=float, help='Reference run: its MD time step (fs).')
@click.option('--source', default='', help='Reference run: where it comes from (publication, DOI, archive).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object instead of text.')
@decorators.with_dbenv()
def analyze(
    files,
    fmt,
    species,
    frame_interval_fs,
    fit_start_ps,
    fit_end_ps,
    consecutive,
    temperature,
    estimator,
    lammps_types,
    reference_code,
    functional,
    timestep_fs,
    source,
    as_json,
):
    """Compute D (cm²/s) ± error of the mobile species from trajectory FILES (gzip/bz2/xz read directly)."""
    if (fit_start_ps is None) != (fit_end_ps is None):
        echo.echo_critical('give both --fit-start-ps and --fit-end-ps, or neither (automatic window).')
    window = None if fit_start_ps is None else (fit_start_ps, fit_end_ps)
    reference = None
    if reference_code or functional or timestep_fs is not None or source:
        if not (reference_code and functional and temperature is not None):
            echo.echo_critical('a reference run needs --reference-code, --functional and --temperature together.')
        reference = {
            'code': reference_code, 'functional': functional, 'temperature_K': temperature,
            'timestep_fs': timestep_fs, 'source': source,
        }  # fmt: skip
    try:
        result = analyze_files(
            files,
            fmt,
            species=species,
            frame_interval_fs=frame_interval_fs,
            mode='consecutive' if consecutive else 'replicas',
            temperature_K=temperature,
            window=window,
            estimator=estimator,
            lammps_types=lammps_types.split(',') if lammps_types else None,
            reference=reference,
        )
    except ValueError as exception:
        echo.echo_critical(str(exception))
    if as_json:
        echo_json(result)
        return
    reason = d_unresolved(result)
    if reason:
        echo.echo_warning(f'D({species}) unresolved: {reason}')
    else:
        echo.echo_success(
            f'D({species}) = {format_value(result["D_cm2_s"], result["D_err_cm2_s"])} cm²/s '
            f'({100 * result["relative_error"]:.1f} %, estimator {result["estimator"]})'
        )
    echo.echo(f'estimator {result["estimator"]}: {result["estimator_reason"]}')
    echo.echo(
        f'fit window {result["fit_start_ps"]:.4g}–{result["fit_end_ps"]:.4g} ps, '
        f'log-log slope {format_value(result["loglog_slope"])}, '
        f'{result["n_replicas"]} replica(s) × {result["n_frames"]} frames, {result["n_ions"]} ions'
    )
    if result.get('D_sigma_cm2_s') is not None:
        haven = (
            f'Haven ratio {format_value(result["haven_ratio"], result["haven_ratio_err"])}'
            if result.get('haven_ratio') is not None
            else 'Haven ratio not resolved (see the warnings)'
        )
        echo.echo(
            f'collective D_σ = {format_value(result["D_sigma_cm2_s"], result["D_sigma_err_cm2_s"])} cm²/s, {haven}'
        )
    if result.get('sigma_mS_cm') is not None:
        echo.echo(f'Nernst–Einstein σ({temperature:g} K) = {format_value(result["sigma_mS_cm"])} mS/cm')
    for warning in result['warnings']:
        echo.echo_warning(warning)
    echo.echo(
        f'diffusion result: Dict<{result["pk"]}>  (verdi node show {result["pk"]}; aiida-mlffdiff plot {result["pk"]})'
    )
