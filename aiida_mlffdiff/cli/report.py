"""``aiida-mlffdiff report PK``: the comparison table of a study, built from the provenance graph."""

from __future__ import annotations

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

from . import cmd_root
from .utils import echo_json


@cmd_root.command('report')
@arguments.PROCESS('study')
@click.option('--json', 'as_json', is_flag=True, help='Print the rows as JSON (raw numbers, units in the keys).')
@click.option('--csv', 'as_csv', is_flag=True, help='Print the rows as CSV (raw numbers, units in the header).')
@click.option('--reference-row', default=None, help='Row whose D is the reference of "force RMSE vs transport".')
@click.option('--reference-d', type=float, default=None, help='A reference D (cm²/s), e.g. from AIMD, instead.')
@click.option('-T', '--temperature', type=float, default=None, help='Temperature (K) of that comparison [lowest].')
@decorators.with_dbenv()
def report(study, as_json, as_csv, reference_row, reference_d, temperature):
    """Rows functional × architecture: force RMSE, D(T) ± SE, Ea ± error, extrapolated σ, replicas; and whether
    force RMSE predicts transport (Spearman ρ with a bootstrap interval)."""
    from ..study_report import (
        format_correlation,
        format_force_constants,
        format_label_errors,
        format_locality,
        format_table,
        study_force_constants,
        study_label_errors,
        study_locality,
        study_rows,
        table_csv,
        transport_correlation,
    )

    if as_json and as_csv:
        echo.echo_critical('choose one of --json and --csv.')
    if study.process_type == 'aiida.workflows:mlffdiff.benchmark':
        _benchmark(study, as_json)
        return
    try:
        rows = study_rows(study)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    failed = study.outputs.comparison['failed'] if 'comparison' in study.outputs else {}
    if reference_row is not None and reference_row not in {row['label'] for row in rows}:
        echo.echo_critical(f'no row {reference_row!r}; rows: {", ".join(row["label"] for row in rows)}.')
    correlation = transport_correlation(
        rows, reference=reference_row, reference_d_cm2_s=reference_d, temperature_K=temperature
    )
    locality = study_locality(study)
    force_constants = study_force_constants(study, rows)
    label_errors = study_label_errors(study)
    if as_json:
        echo_json(
            {
                'study_pk': study.pk,
                'rows': rows,
                'failed': failed,
                'transport_correlation': correlation,
                'locality': locality,
                'force_constants': force_constants,
                'label_errors': label_errors,
            }
        )
        return
    if as_csv:
        click.echo(table_csv(rows), nl=False)
        return
    state = 'finished ok' if study.is_finished_ok else f'state {study.process_state.value} [{study.exit_status}]'
    echo.echo(f'MlffDiffusionStudyWorkChain<{study.pk}> ({state}); σ extrapolated by Arrhenius, 95 % interval')
    if not rows:
        echo.echo_warning('no finished row yet.')
    else:
        echo.echo(format_table(rows))
        echo.echo('')
    if label_errors:
        echo.echo(format_label_errors(label_errors))
    if rows:
        echo.echo(format_correlation(correlation))
    if locality:
        echo.echo(format_locality(locality))
    if force_constants:
        echo.echo(format_force_constants(force_constants))
    for label, reason in failed.items():
        echo.echo_warning(f'{label}: {reason}')


def _benchmark(node, as_json: bool) -> None:
    """The report of a BenchmarkWorkChain (text or JSON)."""
    from ..benchmark_report import benchmark_data, format_benchmark

    try:
        data = benchmark_data(node)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    if as_json:
        echo_json(data)
        return
    state = 'finished ok' if node.is_finished_ok else f'state {node.process_state.value} [{node.exit_status}]'
    echo.echo(f'BenchmarkWorkChain<{node.pk}> ({state}); forces against DFT in meV/Å, D in cm²/s')
    echo.echo(format_benchmark(data))
