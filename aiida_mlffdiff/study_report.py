"""The comparison table of a study, built by QueryBuilder from the provenance graph (not from the study's outputs).

From the study node it follows the CALL links labelled ``diffusion_<row>`` and ``training_<row>`` to the
DiffusionWorkChain (its ``summary`` and ``arrhenius`` outputs and its ``model`` input) and the TrainingWorkChain
(its ``test_metrics`` output) of every row, so the table can be rebuilt for any study in any profile.
"""

from __future__ import annotations

import csv
import io
import math

from aiida import orm
from aiida.common.links import LinkType

from .analysis.correlation import rank_correlation
from .data.mlff_model import MlffModel
from .functions.comparison import comparison_row, row_axes

__all__ = (
    'STUDY_LABEL',
    'diffusion_chains',
    'format_correlation',
    'format_label_errors',
    'format_table',
    'study_label_errors',
    'study_rows',
    'table_csv',
    'transport_correlation',
)

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
    training = _outputs(study, 'training_', ['test_metrics', 'reference_test_metrics', 'validation_metrics'])
    train_sets = _called(study, 'training_')
    train_sets.append(
        orm.Data, with_incoming='chain', edge_filters={'label': 'split__train'}, tag='train', project=['attributes']
    )
    train_of = {item['call']['label'][len('training_') :]: item['train']['attributes'] for item in train_sets.dict()}
    splits = _called(study, 'training_')
    splits.append(
        orm.Dict, with_outgoing='chain', edge_filters={'label': 'split_parameters'}, tag='split', project=['attributes']
    )
    split_of = {item['call']['label'][len('training_') :]: item['split']['attributes'] for item in splits.dict()}
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
                row_axes(train_of.get(label), split_of.get(label, {})),
                training.get(label, {}).get('reference_test_metrics'),
                training.get(label, {}).get('validation_metrics'),
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
    """Column names: fixed ones, the training-choice axes any row has (reference level, train size with the
    validation force RMSE, errors against the reference labels), plus one ``D(<T> K) cm²/s`` column per temperature
    of any row."""
    temperatures = sorted({entry['temperature_K'] for row in rows for entry in row['temperatures'].values()})
    has = {key: any(row.get(key) is not None for row in rows) for key in AXIS_COLUMNS}
    return [
        'functional',
        *(AXIS_COLUMNS[key] for key in ('reference_level', 'n_train') if has[key]),
        'architecture',
        'model',
        'MD engine',
        'force RMSE (meV/Å)',
        *(AXIS_COLUMNS[key] for key in ('validation_force_rmse_meV_A',) if has[key] and has['n_train']),
        *(
            AXIS_COLUMNS[key]
            for key in ('force_rmse_reference_meV_A', 'training_wall_s', 'md_atom_steps_per_s')
            if has[key]
        ),
        *(f'D({t:g} K) (cm²/s)' for t in temperatures),
        'Ea (eV)',
        'σ(T_x) (mS/cm)',
        'replicas',
    ]


#: Row key → column of the training-choice axes (shown when a row has a value).
AXIS_COLUMNS = {
    'reference_level': 'labels',
    'n_train': 'train configs',
    'validation_force_rmse_meV_A': 'validation force RMSE (meV/Å)',
    'force_rmse_reference_meV_A': 'force RMSE vs ref (meV/Å)',
    'training_wall_s': 'training (s)',
    'md_atom_steps_per_s': 'MD atom-steps/s',
}


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
    temperature = row['extrapolation_temperature_K']
    cells = []
    for column in columns:
        if column.startswith('D('):
            at = float(column.split('(')[1].split(' K')[0])
            entry = by_temperature.get(at)
            if entry is None:
                cells.append('n/a')
            elif entry.get('unresolved'):
                cells.append(unresolved(f'D({at:g} K)', entry['unresolved']))
            else:
                cells.append(_value(entry['D_cm2_s'], entry['D_err_cm2_s']))
        elif column == 'Ea (eV)':
            if row['Ea_eV'] is None:
                cells.append('n/a')
            elif row.get('Ea_unresolved'):
                cells.append(unresolved('Ea', row['Ea_unresolved']))
            else:
                cells.append(_value(row['Ea_eV'], row['Ea_err_eV']))
        elif column == 'σ(T_x) (mS/cm)':
            sigma = row['sigma_extrapolated_mS_cm']
            if sigma is None:
                cells.append('n/a')
            elif row.get('sigma_unresolved'):
                cells.append(unresolved(f'σ({temperature:g} K)', row['sigma_unresolved']))
            else:
                cells.append(f'{sigma:.3g} {_interval(row["sigma_interval_mS_cm"])} @{temperature:g} K')
        else:
            cells.append(_plain_cell(row, column))
    return cells


def _plain_cell(row: dict, column: str) -> str:
    rmse = {
        'force RMSE (meV/Å)': 'force_rmse_meV_A',
        AXIS_COLUMNS['force_rmse_reference_meV_A']: 'force_rmse_reference_meV_A',
        AXIS_COLUMNS['validation_force_rmse_meV_A']: 'validation_force_rmse_meV_A',
    }
    if column in rmse:
        return _value(row.get(rmse[column]), fmt='.1f')
    if column in (AXIS_COLUMNS['training_wall_s'], AXIS_COLUMNS['md_atom_steps_per_s']):
        key = 'training_wall_s' if column == AXIS_COLUMNS['training_wall_s'] else 'md_atom_steps_per_s'
        return _value(row.get(key), fmt='.3g')
    if column == AXIS_COLUMNS['n_train']:
        return 'n/a' if row.get('n_train') is None else str(row['n_train'])
    key = {'functional': 'functional', 'labels': 'reference_level', 'architecture': 'architecture'}.get(column)
    if key is not None:
        return row.get(key) or 'n/a'
    if column == 'model':
        return str(row['model_pk'])
    if column == 'MD engine':
        return row.get('md_engine') or 'n/a'
    if column == 'replicas':
        return str(row['n_replicas'])
    raise ValueError(f'unknown column {column!r}')


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
        'reference_level',
        'dataset_size',
        'n_train',
        'architecture',
        'model_pk',
        'md_engine',
        'force_rmse_meV_A',
        'energy_rmse_meV_atom',
        'force_rmse_reference_meV_A',
        'energy_rmse_reference_meV_atom',
        'validation_force_rmse_meV_A',
        'validation_energy_rmse_meV_atom',
        'training_wall_s',
        'md_atom_steps_per_s',
    ]
    n_fixed = len(header)
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
        values = [row.get(key) for key in header[:n_fixed]]
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


def _resolved_d(row: dict, temperature_K: float) -> float | None:
    for entry in row['temperatures'].values():
        if entry['temperature_K'] == temperature_K and not entry.get('unresolved'):
            return entry['D_cm2_s']
    return None


def _reference_rmse(row: dict) -> float | None:
    """Force RMSE (meV/Å) against the reference labels: the reference-level test errors where the row has them."""
    value = row.get('force_rmse_reference_meV_A')
    return value if value is not None else row.get('force_rmse_meV_A')


def transport_correlation(
    rows: list[dict],
    *,
    reference: str | None = None,
    reference_d_cm2_s: float | None = None,
    temperature_K: float | None = None,
) -> dict:
    """Does the force RMSE predict transport? Spearman ρ between each trained model's force RMSE against the
    reference labels (meV/Å) and |ln(D / D_ref)| at one temperature, with a bootstrap interval.

    :param reference: label of the reference row; default: of the rows trained on the reference labels (their test
        errors equal their reference-level errors), the one trained on the most configurations, then with the lowest
        force RMSE. Left out of the pairs.
    :param reference_d_cm2_s: a reference D given by the user (e.g. AIMD) instead of a row's.
    :param temperature_K: default: the lowest temperature of the rows.
    :returns: ``temperature_K``, ``reference`` (label or 'given'), ``D_ref_cm2_s``, ``pairs`` (label, force RMSE,
        |ln D/D_ref|), ``left_out`` (label → why) and ``correlation`` (see :class:`RankCorrelation`); with
        ``unresolved`` set when there is no usable reference.
    """
    trained = [row for row in rows if _reference_rmse(row) is not None]
    temperatures = sorted({e['temperature_K'] for row in trained for e in row['temperatures'].values()})
    result: dict = {'temperature_K': temperature_K, 'reference': reference, 'D_ref_cm2_s': reference_d_cm2_s}
    if temperature_K is None and temperatures:
        result['temperature_K'] = temperature_K = temperatures[0]
    if reference_d_cm2_s is not None:
        result['reference'] = 'given'
    else:
        if reference is None:
            on_reference = [
                row for row in trained
                if row.get('force_rmse_reference_meV_A') in (None, row.get('force_rmse_meV_A'))
                and _resolved_d(row, temperature_K) is not None
            ]  # fmt: skip
            on_reference.sort(key=lambda row: (-(row.get('n_train') or 0), _reference_rmse(row)))
            reference = on_reference[0]['label'] if on_reference else None
        by_label = {row['label']: row for row in rows}
        if reference not in by_label or _resolved_d(by_label[reference], temperature_K) is None:
            why = f'no reference row with a resolved D at {temperature_K:g} K' if temperature_K else 'no row'
            result.update(unresolved=why, pairs=[], left_out={}, correlation=None)
            return result
        result['reference'] = reference
        result['D_ref_cm2_s'] = _resolved_d(by_label[reference], temperature_K)
    pairs, left_out = [], {}
    for row in trained:
        if row['label'] == result['reference']:
            continue
        d_value = _resolved_d(row, temperature_K)
        if d_value is None:
            left_out[row['label']] = f'D({temperature_K:g} K) unresolved or missing'
            continue
        pairs.append((row['label'], _reference_rmse(row), abs(math.log(d_value / result['D_ref_cm2_s']))))
    correlation = rank_correlation([p[1] for p in pairs], [p[2] for p in pairs], what=('force RMSE', '|ln D/D_ref|'))
    result.update(pairs=pairs, left_out=left_out, correlation=correlation.as_dict(), unresolved=correlation.unresolved)
    return result


def format_correlation(result: dict) -> str:
    """The lines the report prints for :func:`transport_correlation`."""
    temperature = result.get('temperature_K')
    if result.get('correlation') is None:
        return f'force RMSE vs transport: unresolved ({result["unresolved"]})'
    correlation = result['correlation']
    reference = result['reference']
    head = (
        f'force RMSE (vs reference labels) against |ln D/D_ref| at {temperature:g} K, D_ref = '
        f'{result["D_ref_cm2_s"]:.3g} cm²/s ({"given" if reference == "given" else f"row {reference}"}), '
        f'{correlation["n_pairs"]} models:'
    )
    if correlation['unresolved']:
        body = f'  Spearman ρ unresolved: {correlation["unresolved"]}'
    else:
        low, high = correlation['interval']
        body = (
            f'  Spearman ρ = {correlation["rho"]:+.2f}, {100 * correlation["confidence"]:.0f} % bootstrap interval '
            f'[{low:+.2f}, {high:+.2f}]: {correlation["interpretation"]}'
        )
    lines = [head, body]
    lines += [f'  left out {label}: {why}' for label, why in result['left_out'].items()]
    return '\n'.join(lines)


LOCALITY_LABEL = 'LocalityWorkChain'


def study_models(study: orm.WorkflowNode) -> dict[int, str]:
    """The study's models: pk → row label (its ``models.<label>`` outputs)."""
    links = study.base.links.get_outgoing(link_label_filter='models__%').all()
    return {link.node.pk: link.link_label.removeprefix('models__') for link in links}


def study_locality(study: orm.WorkflowNode) -> list[dict]:
    """The finished locality tests (LocalityWorkChain) of the study's models, found through the provenance graph:
    one entry per test with the row label, the receptive field (Å) and per species the radius (Å) from which the
    locality error stays below the threshold (None: not within the sweep), newest test per row last."""
    models = study_models(study)
    if not models:
        return []
    query = orm.QueryBuilder()
    query.append(MlffModel, filters={'id': {'in': list(models)}}, tag='model', project='id')
    query.append(
        orm.WorkflowNode,
        with_incoming='model',
        edge_filters={'label': 'model'},
        filters={'attributes.process_label': LOCALITY_LABEL, 'attributes.exit_status': 0},
        tag='chain',
        project='id',
    )
    query.append(orm.Dict, with_incoming='chain', edge_filters={'label': 'locality'}, project='attributes')
    tests = []
    for model_pk, chain_pk, profile in sorted(query.all(), key=lambda item: item[1]):
        tests.append(
            {
                'label': models[model_pk],
                'pk': chain_pk,
                'receptive_field_A': profile['receptive_field_A'],
                'threshold_meV_A': profile['threshold_meV_A'],
                'radius_below_threshold_A': {
                    species: entry['radius_below_threshold_A'] for species, entry in profile['species'].items()
                },
            }
        )
    return tests


def format_locality(tests: list[dict]) -> str:
    """One line per locality test: where each central species' error falls below the threshold, also in units of
    twice the receptive field; 'not reached' when the sweep did not get there."""
    lines = []
    for test in tests:
        r_f = test['receptive_field_A']
        parts = [
            f'{species} {radius:g} Å ({radius / (2 * r_f):.2f})' if radius is not None else f'{species} not reached'
            for species, radius in sorted(test['radius_below_threshold_A'].items())
        ]
        lines.append(
            f'locality {test["label"]} (LocalityWorkChain<{test["pk"]}>, r_f = {r_f:g} Å): error < '
            f'{test["threshold_meV_A"]:g} meV/Å from R (R/2r_f) = ' + ', '.join(parts)
        )
    return '\n'.join(lines)


#: Process label of the force-constant benchmark whose metrics the report shows next to each row.
FORCE_CONSTANTS_LABEL = 'ForceConstantsWorkChain'


def study_force_constants(study: orm.WorkflowNode, rows: list[dict] | None = None) -> list[dict]:
    """The force-constant benchmarks (ForceConstantsWorkChain with a DFT reference) of the study's models, found
    through the provenance graph: per row and benchmark the Φ2/Φ3 errors against DFT (R², MAE), the phonon RMSE (THz)
    and, from the row, the test force RMSE (meV/Å) and |ln D/D_ref| of :func:`transport_correlation`."""
    models = study_models(study)
    if not models:
        return []
    query = orm.QueryBuilder()
    query.append(MlffModel, filters={'id': {'in': list(models)}}, tag='model', project='id')
    query.append(
        orm.WorkflowNode,
        with_incoming='model',
        edge_filters={'label': {'like': 'models__%'}},
        edge_project='label',
        filters={'attributes.process_label': FORCE_CONSTANTS_LABEL},
        tag='chain',
        project='*',
    )
    rows = rows if rows is not None else study_rows(study)
    by_label = {row['label']: row for row in rows}
    transport = {pair[0]: pair[2] for pair in transport_correlation(rows).get('pairs', [])}
    found = []
    for model_pk, chain, edge in sorted(query.all(), key=lambda item: item[1].pk):
        key = edge.removeprefix('models__')
        if 'metrics' not in chain.outputs or key not in chain.outputs.metrics:
            continue
        metrics = chain.outputs.metrics[key].get_dict()
        label = models[model_pk]
        row = by_label.get(label, {})
        found.append({
            'label': label,
            'pk': chain.pk,
            'fc2': {name: metrics['fc2'][name] for name in ('r2', 'mae', 'rmse')},
            'fc3': {name: metrics['fc3'][name] for name in ('r2', 'mae', 'rmse')} if 'fc3' in metrics else None,
            'phonon_rmse_THz': metrics['phonons']['mesh_rmse_THz'],
            'force_rmse_meV_A': row.get('force_rmse_meV_A'),
            'abs_ln_D_over_D_ref': transport.get(label),
        })  # fmt: skip
    return found


def format_force_constants(benchmarks: list[dict]) -> str:
    """One line per model: harmonic (Φ2), anharmonic (Φ3) and transport errors side by side."""
    lines = []
    for entry in benchmarks:
        fc2, fc3 = entry['fc2'], entry['fc3']
        third = f'Φ3 R² {fc3["r2"]:.3f}, MAE {fc3["mae"]:.2g} eV/Å³' if fc3 else 'Φ3 not computed'
        force = entry['force_rmse_meV_A']
        transport = entry['abs_ln_D_over_D_ref']
        lines.append(
            f'force constants {entry["label"]} (ForceConstantsWorkChain<{entry["pk"]}>, against DFT): Φ2 R² '
            f'{fc2["r2"]:.3f}, MAE {fc2["mae"]:.2g} eV/Å²; {third}; phonons {entry["phonon_rmse_THz"]:.2f} THz; '
            f'force RMSE {_value(force)} meV/Å; |ln D/D_ref| '
            + (f'{transport:.2f}' if transport is not None else 'unresolved')
        )
    return '\n'.join(lines)


def study_label_errors(study: orm.WorkflowNode) -> dict[str, dict]:
    """Per ``<functional>_<level>``: that level's labels against the reference level of the same configurations
    (the study's ``label_errors`` outputs; empty without reference levels)."""
    if 'label_errors' not in study.outputs:
        return {}
    return {label: node.get_dict() for label, node in sorted(study.outputs.label_errors.items())}


def format_label_errors(errors: dict[str, dict]) -> str:
    """One line per cheaper level: force RMSE (meV/Å) overall and per species, energy RMSE (meV/atom, the constant
    offset between the levels removed)."""
    lines = []
    for label, error in errors.items():
        species = ', '.join(f'{s} {v:.3g}' for s, v in sorted(error.get('force_rmse_per_species_meV_A', {}).items()))
        energy = error.get('energy_rmse_offset_removed_meV_atom')
        lines.append(
            f'labels {label} against {error.get("reference_level", "?")} (same configurations): force RMSE '
            f'{error["force_rmse_meV_A"]:.3g} meV/Å ({species})'
            + (f', energy RMSE {energy:.3g} meV/atom (offset removed)' if energy is not None else '')
        )
    return '\n'.join(lines)
