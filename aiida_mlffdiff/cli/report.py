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
@decorators.with_dbenv()
def report(study, as_json, as_csv):
    """Rows functional × architecture: force RMSE, D(T) ± SE, Ea ± error, extrapolated σ, replicas."""
    from ..study_report import format_table, study_rows, table_csv

    if as_json and as_csv:
        echo.echo_critical('choose one of --json and --csv.')
    try:
        rows = study_rows(study)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    failed = study.outputs.comparison['failed'] if 'comparison' in study.outputs else {}
    if as_json:
        echo_json({'study_pk': study.pk, 'rows': rows, 'failed': failed})
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
    for label, reason in failed.items():
        echo.echo_warning(f'{label}: {reason}')
