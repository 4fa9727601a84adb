"""``compare_study``: the study's comparison table (functional × architecture) as one Dict in the provenance."""

from __future__ import annotations

from collections.abc import Mapping

from aiida.engine import calcfunction
from aiida.orm import Dict

from ..analysis import arrhenius_unresolved, d_unresolved
from .exit_codes import exit_code

#: Columns of a row, with units: what ``aiida-mlffdiff report`` prints.
ROW_KEYS = (
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
    'temperatures',
    'Ea_eV',
    'Ea_err_eV',
    'D0_cm2_s',
    'extrapolation_temperature_K',
    'D_extrapolated_cm2_s',
    'sigma_extrapolated_mS_cm',
    'sigma_interval_mS_cm',
    'n_replicas',
    'simulated_time_ps',
    'converged',
    'Ea_unresolved',
    'D_extrapolated_unresolved',
    'sigma_unresolved',
)

#: Per temperature of a row (``temperatures`` values).
TEMPERATURE_KEYS = ('temperature_K', 'D_cm2_s', 'D_err_cm2_s', 'n_replicas', 'converged', 'diffusive', 'unresolved')


def comparison_row(
    label: str,
    architecture: str,
    model_pk: int,
    diffusion: dict,
    arrhenius: dict | None,
    test_metrics: dict | None,
    md_engine: str | None = None,
    axes: Mapping | None = None,
    reference_metrics: dict | None = None,
    validation_metrics: dict | None = None,
) -> dict:
    """One row: test-set errors (meV/Å, meV/atom), D ± SE per T (cm²/s), Ea ± error (eV), σ at the extrapolation
    temperature (mS/cm) with its interval, replicas and simulated ps summed over temperatures; ``md_engine`` is the
    engine of the row's MD (its MD parameters' ``engine``). ``axes`` gives the training choices of the row:
    ``reference_level`` of its labels, ``dataset_size`` as asked (count or fraction) and ``n_train`` (configurations
    trained on); ``reference_metrics`` the test-set errors against the reference level's labels;
    ``validation_metrics`` the training job's final errors on the validation set (``validation_force_rmse_meV_A``,
    ``validation_energy_rmse_meV_atom``: the engine's own numbers, on the row's own labels). The cost of the model:
    ``training_wall_s`` (from ``validation_metrics``) and ``md_atom_steps_per_s`` (mean over temperatures of the
    MD's atom-steps per process-second).

    ``unresolved`` (per temperature), ``Ea_unresolved``, ``D_extrapolated_unresolved`` and ``sigma_unresolved`` say
    why a number is not a result (None when it is one), judged from the stored numbers by
    :mod:`aiida_mlffdiff.analysis.resolution`, so rows of results stored before the verdicts existed get them too."""
    arrhenius = arrhenius or {}
    test_metrics = test_metrics or {}
    temperatures = {}
    for key, entry in sorted(diffusion['temperatures'].items(), key=lambda item: item[1]['temperature_K']):
        temperatures[key] = {name: entry.get(name) for name in TEMPERATURE_KEYS}
        temperatures[key]['unresolved'] = d_unresolved(entry)
    verdicts = {'Ea': None, 'D_at_T': None, 'sigma_at_T': None}
    if arrhenius:
        by_temperature = {entry['temperature_K']: entry for entry in temperatures.values()}
        points = (
            []
            if 'D_unresolved' in arrhenius
            else [by_temperature.get(t, {}) for t in arrhenius.get('temperatures_K', [])]
        )
        verdicts = arrhenius_unresolved(arrhenius, points)
    axes = axes or {}
    reference_metrics = reference_metrics or {}
    validation_metrics = validation_metrics or {}
    return {
        'label': label,
        'functional': label.split('_', 1)[0],
        'reference_level': axes.get('reference_level') or None,
        'dataset_size': axes.get('dataset_size'),
        'n_train': axes.get('n_train'),
        'architecture': architecture,
        'model_pk': model_pk,
        'md_engine': md_engine,
        'force_rmse_meV_A': test_metrics.get('force_rmse_meV_A'),
        'energy_rmse_meV_atom': test_metrics.get('energy_rmse_meV_atom'),
        'force_rmse_reference_meV_A': reference_metrics.get('force_rmse_meV_A'),
        'energy_rmse_reference_meV_atom': reference_metrics.get('energy_rmse_meV_atom'),
        'validation_force_rmse_meV_A': validation_metrics.get('forces_rmse_meV_A'),
        'validation_energy_rmse_meV_atom': validation_metrics.get('energy_rmse_meV_atom'),
        'training_wall_s': validation_metrics.get('training_wall_s'),
        'md_atom_steps_per_s': _mean([e.get('md_atom_steps_per_s') for e in diffusion['temperatures'].values()]),
        'temperatures': temperatures,
        'Ea_eV': arrhenius.get('Ea_eV'),
        'Ea_err_eV': arrhenius.get('Ea_err_eV'),
        'D0_cm2_s': arrhenius.get('D0_cm2_s'),
        'extrapolation_temperature_K': arrhenius.get('temperature_K'),
        'D_extrapolated_cm2_s': arrhenius.get('D_at_T_cm2_s'),
        'sigma_extrapolated_mS_cm': arrhenius.get('sigma_at_T_mS_cm'),
        'sigma_interval_mS_cm': arrhenius.get('sigma_interval_mS_cm'),
        'n_replicas': sum(entry['n_replicas'] for entry in diffusion['temperatures'].values()),
        # to 9 significant digits, like _mean: 0.3 + 0.3 + 0.3 ps is 0.8999999999999999 computed, 0.9 once stored
        'simulated_time_ps': float(
            f'{sum(entry["simulated_time_ps"] for entry in diffusion["temperatures"].values()):.9g}'
        ),
        'converged': bool(diffusion.get('converged')),
        'Ea_unresolved': verdicts['Ea'],
        'D_extrapolated_unresolved': verdicts['D_at_T'],
        'sigma_unresolved': verdicts['sigma_at_T'],
    }


def _mean(values: list) -> float | None:
    """The mean to 6 significant digits (a cost figure: the same number whether computed before or after a Dict
    stored it, which keeps 14), or None."""
    values = [value for value in values if value]
    return float(f'{sum(values) / len(values):.6g}') if values else None


def row_axes(train_attributes: Mapping | None, split_parameters: Mapping) -> dict:
    """The training choices of a row from the attributes of its train set (TrainingSet) and its split parameters:
    the reference level of its labels, the dataset size asked for and the configurations trained on."""
    if train_attributes is None:
        return {}
    return {
        'reference_level': train_attributes.get('reference_level') or None,
        'dataset_size': split_parameters.get('train_size'),
        'n_train': train_attributes.get('n_structures'),
    }


@calcfunction
def compare_study(failed: Dict | None = None, **rows) -> Dict:
    """The comparison table of a study from each row's nodes.

    :param rows: label (``<functional>_<architecture>``) → ``{'model': MlffModel, 'diffusion': Dict (the
        DiffusionWorkChain summary), 'arrhenius': Dict (optional), 'test_metrics': Dict (optional),
        'md_parameters': Dict (optional: the MD parameters of the row's DiffusionWorkChain, for the engine),
        'train_set': TrainingSet (optional: what the model was trained on), 'split_parameters': Dict (optional:
        the split of its training), 'reference_test_metrics': Dict (optional: errors against reference labels),
        'validation_metrics': Dict (optional: the training's, with its wall time)}``.
    :param failed: label → why that row is missing.
    """
    if not rows:
        return exit_code('ERROR_MISSING_INPUT', 'no row given.')
    table = []
    for label in sorted(rows):
        row = rows[label]
        if 'diffusion' not in row or 'model' not in row:
            return exit_code('ERROR_MISSING_INPUT', f'row {label} lacks its diffusion summary or its model.')
        table.append(
            comparison_row(
                label,
                row['model'].architecture,
                row['model'].pk,
                row['diffusion'].get_dict(),
                row['arrhenius'].get_dict() if 'arrhenius' in row else None,
                row['test_metrics'].get_dict() if 'test_metrics' in row else None,
                row['md_parameters'].get_dict().get('engine') if 'md_parameters' in row else None,
                row_axes(
                    row['train_set'].base.attributes.all if 'train_set' in row else None,
                    row['split_parameters'].get_dict() if 'split_parameters' in row else {},
                ),
                row['reference_test_metrics'].get_dict() if 'reference_test_metrics' in row else None,
                row['validation_metrics'].get_dict() if 'validation_metrics' in row else None,
            )
        )
    return Dict({'rows': table, 'failed': failed.get_dict() if failed is not None else {}})
