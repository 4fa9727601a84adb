"""``compare_benchmark``: several models on one material against DFT forces and a reference D (e.g. AIMD).

Pure function :func:`benchmark_table` + thin calcfunction. Per model: force and energy errors (overall, per species,
per configuration type) and, per temperature, D/D_ref with the uncertainty of ln(D/D_ref) from both standard errors
(σ_ln² = (SE/D)² + (SE_ref/D_ref)²); a ratio is ``unresolved`` (with the reason) when either D is. Across models,
per temperature: Spearman's ρ of force RMSE against |ln D/D_ref| with its bootstrap interval (does a more accurate
model give a more reliable D on this material?).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from aiida.engine import calcfunction
from aiida.orm import Dict

from ..analysis import d_unresolved
from ..analysis.correlation import rank_correlation
from .exit_codes import exit_code
from .serialization import json_safe

#: Force-error keys copied from each model's evaluation metrics (meV/Å, meV/atom).
FORCE_KEYS = (
    'force_mae_meV_A',
    'force_rmse_meV_A',
    'force_mae_per_species_meV_A',
    'force_rmse_per_species_meV_A',
    'energy_mae_meV_atom',
    'energy_rmse_offset_meV_atom',
    'per_config_type',
)


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def d_ratio(model: Mapping, reference: Mapping) -> dict:
    """D/D_ref of one temperature with σ of ln(D/D_ref), whether they agree within 2σ, or why it is unresolved."""
    why = d_unresolved(model)
    if why:
        return {'ratio': None, 'ln_ratio': None, 'ln_ratio_err': None, 'agrees_2sigma': None,
                'unresolved': f'model D unresolved: {why}'}  # fmt: skip
    why = d_unresolved(reference)
    if why:
        return {'ratio': None, 'ln_ratio': None, 'ln_ratio_err': None, 'agrees_2sigma': None,
                'unresolved': f'reference D unresolved: {why}'}  # fmt: skip
    ln_ratio = math.log(model['D_cm2_s'] / reference['D_cm2_s'])
    sigma = math.hypot(model['D_err_cm2_s'] / model['D_cm2_s'], reference['D_err_cm2_s'] / reference['D_cm2_s'])
    return {
        'ratio': math.exp(ln_ratio),
        'ln_ratio': ln_ratio,
        'ln_ratio_err': sigma,
        'agrees_2sigma': abs(ln_ratio) <= 2 * sigma,
        'unresolved': None,
    }


def benchmark_table(metrics: Mapping[str, Mapping], summaries: Mapping[str, Mapping], references: Mapping) -> dict:
    """The benchmark's table: one row per model, the reference per temperature and the force-vs-D correlation.

    :param metrics: model label → its evaluation metrics on the DFT set (may be empty: no DFT set given).
    :param summaries: model label → its DiffusionWorkChain summary (may be empty: no MD).
    :param references: temperature label (``T_600K``) → the reference D result (``compute_diffusion``'s Dict, with
        ``temperature_K``); what the reference is (code, functional, source) is on its trajectories, found by
        provenance (:func:`aiida_mlffdiff.study_report.reference_metadata`).
    """
    labels = sorted(set(metrics) | set(summaries))
    rows = []
    for label in labels:
        row = {'label': label, **{key: metrics.get(label, {}).get(key) for key in FORCE_KEYS}, 'temperatures': {}}
        entries = summaries.get(label, {}).get('temperatures', {})
        for t_label, entry in sorted(entries.items(), key=lambda item: item[1]['temperature_K']):
            cell = {key: entry.get(key) for key in ('temperature_K', 'D_cm2_s', 'D_err_cm2_s', 'unresolved')}
            if t_label in references:
                reference = references[t_label]
                cell.update({'D_ref_cm2_s': reference['D_cm2_s'], 'D_ref_err_cm2_s': reference['D_err_cm2_s']})
                cell.update(d_ratio(entry, reference))
            row['temperatures'][t_label] = cell
        rows.append(row)
    correlations = {}
    for t_label in sorted(references):
        pairs = [
            (row['force_rmse_meV_A'], abs(row['temperatures'][t_label]['ln_ratio']))
            for row in rows
            if _finite(row['force_rmse_meV_A'])
            and t_label in row['temperatures']
            and row['temperatures'][t_label].get('ln_ratio') is not None
        ]
        x, y = [p[0] for p in pairs], [p[1] for p in pairs]
        correlations[t_label] = rank_correlation(x, y, what=('force RMSE', '|ln D/D_ref|')).as_dict()
        correlations[t_label]['n_models'] = len(rows)
    return {
        'rows': rows,
        'reference': {
            t_label: {
                'temperature_K': ref.get('temperature_K'),
                'D_cm2_s': ref.get('D_cm2_s'),
                'D_err_cm2_s': ref.get('D_err_cm2_s'),
                'unresolved': d_unresolved(ref),
            }
            for t_label, ref in sorted(references.items())
        },
        'force_vs_d_correlation': correlations,
    }


@calcfunction
def compare_benchmark(**nodes: Dict) -> Dict:
    """The benchmark table from ``metrics_<label>``, ``summary_<label>`` and ``reference_<T label>`` Dicts."""
    groups: dict[str, dict] = {'metrics_': {}, 'summary_': {}, 'reference_': {}}
    for key, node in nodes.items():
        prefix = next((prefix for prefix in groups if key.startswith(prefix)), None)
        if prefix is None:
            return exit_code('ERROR_INVALID_PARAMETERS', f'unexpected input {key!r}.')
        groups[prefix][key[len(prefix) :]] = node.get_dict()
    if not groups['metrics_'] and not groups['summary_']:
        return exit_code('ERROR_MISSING_INPUT', 'neither evaluation metrics nor diffusion summaries given.')
    return Dict(json_safe(benchmark_table(groups['metrics_'], groups['summary_'], groups['reference_'])))
