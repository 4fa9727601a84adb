"""The report of a ``BenchmarkWorkChain``: its comparison table and what each reference D is, from the provenance graph.

Every D and every ratio that is not a result is printed as "unresolved" with its reason, never as a number.
"""

from __future__ import annotations

from aiida import orm


def reference_metadata(diffusion: orm.Dict) -> dict | None:
    """What a reference D is (code, functional, temperature K, time step fs, source), read from the trajectories it
    was computed from (the ``mlffdiff_reference`` attribute that ``analyze --reference-code`` stores); None if
    none of its trajectories carries it."""
    query = orm.QueryBuilder().append(orm.Dict, filters={'id': diffusion.pk}, tag='d')
    query.append(orm.TrajectoryData, with_descendants='d', project='attributes.mlffdiff_reference')
    found = [value for value in query.all(flat=True) if value]
    return found[0] if found else None


def benchmark_data(node: orm.WorkflowNode) -> dict:
    """The comparison of a benchmark with each reference's metadata (``reference.<T>.metadata``)."""
    if 'comparison' not in node.outputs:
        raise ValueError(f'{node.process_label}<{node.pk}> has no comparison (yet): state {node.process_state.value}.')
    data = node.outputs.comparison.get_dict()
    references = node.base.links.get_incoming().nested().get('reference_diffusion', {})
    for t_label, entry in data['reference'].items():
        entry['metadata'] = reference_metadata(references[t_label]) if t_label in references else None
    data['benchmark_pk'] = node.pk
    return data


def _number(value: float | None, error: float | None = None) -> str:
    if value is None:
        return '-'
    return f'{value:.3g}' if error is None else f'{value:.3g} ± {error:.2g}'


def format_benchmark(data: dict) -> str:
    """Text: one line per model (forces against DFT, per species and per configuration type; D and D/D_ref per
    temperature), the references with their metadata, and the force-error-vs-D-error correlation per temperature."""
    lines = []
    for row in data['rows']:
        parts = [row['label'] + ':']
        if row.get('force_mae_meV_A') is not None:
            species = ', '.join(f'{s} {v:.1f}' for s, v in sorted(row['force_mae_per_species_meV_A'].items()))
            parts.append(f'force MAE {row["force_mae_meV_A"]:.1f} meV/Å ({species})')
            by_type = row.get('per_config_type') or {}
            if by_type:
                parts.append(
                    'per type ' + ', '.join(f'{t} {v["force_mae_meV_A"]:.1f}' for t, v in sorted(by_type.items()))
                )
        for cell in row['temperatures'].values():
            at = f'{cell["temperature_K"]:g} K'
            if cell['unresolved']:
                parts.append(f'D({at}) unresolved ({cell["unresolved"]})')
            else:
                parts.append(f'D({at}) = {_number(cell["D_cm2_s"], cell["D_err_cm2_s"])} cm²/s')
            if 'D_ref_cm2_s' in cell:
                if cell['ratio'] is None:
                    parts.append(f'D/D_ref unresolved ({cell["unresolved"] or "no ratio"})')
                else:
                    verdict = 'agrees within 2σ' if cell['agrees_2sigma'] else 'differs beyond 2σ'
                    parts.append(
                        f'D/D_ref = {cell["ratio"]:.3g} (ln {cell["ln_ratio"]:+.2f} ± {cell["ln_ratio_err"]:.2f}, '
                        f'{verdict})'
                    )
        lines.append('  '.join(parts))
    for t_label, reference in data['reference'].items():
        meta = reference.get('metadata') or {}
        what = ', '.join(
            f'{key} {meta[key]}' for key in ('code', 'functional', 'timestep_fs', 'source') if meta.get(key)
        )
        why = reference['unresolved']  # judged by benchmark_table (d_unresolved)
        value = f'unresolved ({why})' if why else f'{_number(reference["D_cm2_s"], reference["D_err_cm2_s"])} cm²/s'
        lines.append(f'reference {t_label}: D = {value}' + (f' [{what}]' if what else ''))
    for t_label, correlation in data['force_vs_d_correlation'].items():
        if correlation['unresolved']:
            lines.append(f'force RMSE vs |ln D/D_ref| at {t_label}: unresolved ({correlation["unresolved"]})')
        else:
            low, high = correlation['interval']
            lines.append(
                f'force RMSE vs |ln D/D_ref| at {t_label}: Spearman ρ = {correlation["rho"]:.2f} '
                f'[{low:.2f}, {high:.2f}] over {correlation["n_pairs"]} models: {correlation["interpretation"]}'
            )
    return '\n'.join(lines)
