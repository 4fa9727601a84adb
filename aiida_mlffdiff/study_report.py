"""The comparison table of a study, built by QueryBuilder from the provenance graph (not from the study's outputs).

From the study node it follows the CALL links labelled ``diffusion_<row>`` and ``training_<row>`` to the
DiffusionWorkChain (its ``summary`` and ``arrhenius`` outputs and its ``model`` input) and the TrainingWorkChain
(its ``test_metrics`` output) of every row, so the table can be rebuilt for any study in any profile.
"""

from __future__ import annotations

import csv
import io

from aiida import orm
from aiida.common.links import LinkType

from .data.mlff_model import MlffModel
from .functions.comparison import comparison_row

__all__ = ('STUDY_LABEL', 'diffusion_chains', 'format_table', 'study_rows', 'table_csv')

STUDY_LABEL = 'MlffDiffusionStudyWorkChain'


def _called(study: orm.WorkflowNode, prefix: str) -> orm.QueryBuilder:
    """Query of the finished calls of ``study`` whose CALL link label starts with ``prefix`` (tag ``chain``)."""
    query = orm.QueryBuilder()
    query.append(orm.WorkflowNode, filters={'id': study.pk}, tag='study')
    query.append(
        orm.WorkflowNode,
        with_incoming='study',
        edge_filters={'type': LinkType.CALL_WORK.value, 'label': {'like': f'{prefix}%'}},
        edge_tag='call',
        edge_project='label',
        filters={'attributes.exit_status': 0},
        tag='chain',
        project='id',
    )
    return query


def diffusion_chains(study: orm.WorkflowNode) -> dict[str, orm.WorkflowNode]:
    """Row label → the finished DiffusionWorkChain of that row."""
    found = _called(study, 'diffusion_').dict()
    return {item['call']['label'][len('diffusion_') :]: orm.load_node(item['chain']['id']) for item in found}


def _outputs(study: orm.WorkflowNode, prefix: str, labels: list[str]) -> dict[str, dict[str, dict]]:
    """call label (without prefix) → output label → the output Dict's content, for finished calls of ``study``."""
    query = _called(study, prefix)
    query.append(
        orm.Dict,
        with_incoming='chain',
        edge_filters={'type': LinkType.RETURN.value, 'label': {'in': labels}},
        edge_tag='output',
        edge_project='label',
        tag='dict',
        project='attributes',
    )
    found: dict[str, dict[str, dict]] = {}
    for item in query.dict():
        row = item['call']['label'][len(prefix) :]
        found.setdefault(row, {})[item['output']['label']] = item['dict']['attributes']
    return found


def study_rows(study: orm.WorkflowNode) -> list[dict]:
    """The rows of a study (see :data:`aiida_mlffdiff.functions.comparison.ROW_KEYS`), sorted by label.

    :raises ValueError: ``study`` is not an MlffDiffusionStudyWorkChain.
    """
    if not isinstance(study, orm.WorkflowNode) or study.process_label != STUDY_LABEL:
        raise ValueError(f'{study.__class__.__name__}<{study.pk}> is not an {STUDY_LABEL}.')
    diffusion = _outputs(study, 'diffusion_', ['summary', 'arrhenius'])
    training = _outputs(study, 'training_', ['test_metrics'])
    models = _called(study, 'diffusion_')
    models.append(
        MlffModel, with_outgoing='chain', edge_filters={'label': 'model'}, tag='model', project=['id', 'attributes']
    )
    model_of = {
        item['call']['label'][len('diffusion_') :]: (item['model']['id'], item['model']['attributes'])
        for item in models.dict()
    }
    md = _called(study, 'diffusion_')
    md.append(
        orm.Dict, with_outgoing='chain', edge_filters={'label': 'md__md__parameters'}, tag='md', project=['attributes']
    )
    engine_of = {
        item['call']['label'][len('diffusion_') :]: item['md']['attributes'].get('engine') for item in md.dict()
    }
    rows = []
    for label in sorted(diffusion):
        pk, attributes = model_of[label]
        outputs = diffusion[label]
        rows.append(
            comparison_row(
                label,
                attributes['architecture'],
                pk,
                outputs['summary'],
                outputs.get('arrhenius'),
                training.get(label, {}).get('test_metrics'),
                engine_of.get(label),
            )
        )
    return rows


def _value(value: float | None, error: float | None = None, fmt: str = '.3g') -> str:
    if value is None:
        return 'n/a'
    return f'{value:{fmt}}' + (f' ± {error:.2g}' if error is not None else '')


def _interval(interval: list[float] | None) -> str:
    return f'[{interval[0]:.2g}, {interval[1]:.2g}]' if interval else ''


def table_columns(rows: list[dict]) -> list[str]:
    """Column names: fixed ones plus one ``D(<T> K) cm²/s`` column per temperature of any row."""
    temperatures = sorted({entry['temperature_K'] for row in rows for entry in row['temperatures'].values()})
    return [
        'functional',
        'architecture',
        'model',
        'MD engine',
        'force RMSE (meV/Å)',
        *(f'D({t:g} K) (cm²/s)' for t in temperatures),
        'Ea (eV)',
        'σ(T_x) (mS/cm)',
        'replicas',
    ]


def table_cells(row: dict, columns: list[str], notes: list[str] | None = None) -> list[str]:
    """One row as text cells in the order of ``columns``.

    An unresolved number is printed as ``unresolved [k]``, never as a value; ``[k]`` numbers the reason appended to
    ``notes`` (one line each: the row, the quantity and why).
    """
    notes = notes if notes is not None else []

    def unresolved(what: str, reason: str) -> str:
        notes.append(f'[{len(notes) + 1}] {row["label"]} {what}: {reason}')
        return f'unresolved [{len(notes)}]'

    by_temperature = {entry['temperature_K']: entry for entry in row['temperatures'].values()}
    cells = [row['functional'], row['architecture'], str(row['model_pk']), row.get('md_engine') or 'n/a']
    cells.append(_value(row['force_rmse_meV_A'], fmt='.1f'))
    for column in columns[5:-3]:
        temperature = float(column.split('(')[1].split(' K')[0])
        entry = by_temperature.get(temperature)
        if entry is None:
            cells.append('n/a')
        elif entry.get('unresolved'):
            cells.append(unresolved(f'D({temperature:g} K)', entry['unresolved']))
        else:
            cells.append(_value(entry['D_cm2_s'], entry['D_err_cm2_s']))
    if row['Ea_eV'] is None:
        cells.append('n/a')
    elif row.get('Ea_unresolved'):
        cells.append(unresolved('Ea', row['Ea_unresolved']))
    else:
        cells.append(_value(row['Ea_eV'], row['Ea_err_eV']))
    sigma = row['sigma_extrapolated_mS_cm']
    temperature = row['extrapolation_temperature_K']
    if sigma is None:
        cells.append('n/a')
    elif row.get('sigma_unresolved'):
        cells.append(unresolved(f'σ({temperature:g} K)', row['sigma_unresolved']))
    else:
        cells.append(f'{sigma:.3g} {_interval(row["sigma_interval_mS_cm"])} @{temperature:g} K')
    cells.append(str(row['n_replicas']))
    return cells


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table, followed by the reasons of its unresolved cells."""
    columns = table_columns(rows)
    notes: list[str] = []
    body = [table_cells(row, columns, notes) for row in rows]
    widths = [max(len(column), *(len(cells[i]) for cells in body)) for i, column in enumerate(columns)]
    lines = ['  '.join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append('  '.join('-' * width for width in widths))
    lines += ['  '.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) for cells in body]
    if notes:
        lines += ['', 'unresolved (not results):', *notes]
    return '\n'.join(lines)


def table_csv(rows: list[dict]) -> str:
    """The rows as CSV with raw numbers (one D and SE column pair per temperature).

    An unresolved number leaves its cells empty and its ``*_unresolved`` column gives the reason (the raw values
    stay in ``aiida-mlffdiff report --json`` and in the provenance).
    """
    temperatures = sorted({entry['temperature_K'] for row in rows for entry in row['temperatures'].values()})
    header = [
        'label',
        'functional',
        'architecture',
        'model_pk',
        'md_engine',
        'force_rmse_meV_A',
        'energy_rmse_meV_atom',
    ]
    for t in temperatures:
        header += [f'D_{t:g}K_cm2_s', f'D_err_{t:g}K_cm2_s', f'D_{t:g}K_unresolved', f'n_replicas_{t:g}K']
    header += ['Ea_eV', 'Ea_err_eV', 'D0_cm2_s', 'Ea_unresolved', 'extrapolation_temperature_K']
    header += ['D_extrapolated_cm2_s', 'D_extrapolated_unresolved']
    header += ['sigma_extrapolated_mS_cm', 'sigma_low_mS_cm', 'sigma_high_mS_cm', 'sigma_unresolved']
    header += ['n_replicas', 'converged']
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(header)
    for row in rows:
        by_temperature = {entry['temperature_K']: entry for entry in row['temperatures'].values()}
        values = [row.get(key) for key in header[:7]]
        for t in temperatures:
            entry = by_temperature.get(t, {})
            reason = entry.get('unresolved')
            shown = [None, None] if reason else [entry.get('D_cm2_s'), entry.get('D_err_cm2_s')]
            values += [*shown, reason, entry.get('n_replicas')]
        reason = row.get('Ea_unresolved')
        values += [None, None, None] if reason else [row['Ea_eV'], row['Ea_err_eV'], row['D0_cm2_s']]
        values += [reason, row['extrapolation_temperature_K']]
        reason = row.get('D_extrapolated_unresolved')
        values += [None if reason else row['D_extrapolated_cm2_s'], reason]
        reason = row.get('sigma_unresolved')
        interval = row['sigma_interval_mS_cm'] or [None, None]
        values += [None, None, None] if reason else [row['sigma_extrapolated_mS_cm'], *interval]
        values += [reason, row['n_replicas'], row['converged']]
        writer.writerow(['' if value is None else value for value in values])
    return buffer.getvalue()
