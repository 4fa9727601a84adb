"""Error metrics of a force field against reference data (numpy only, no AiiDA import).

Conventions (the same as MACE's and NequIP's tables):

- energies are compared **per atom**: ``(E_pred - E_ref) / n_atoms`` for each configuration, in meV/atom;
- forces are compared **per Cartesian component** over all atoms of all configurations, in meV/Å; the
  per-species figures take the components of the atoms of that species only;
- stresses are compared per Voigt component (xx, yy, zz, yz, xz, xy) over all configurations, in meV/Å³
  **and** in GPa (keys say which: ``..._meV_A3`` and ``..._GPa``).

Inputs are in ASE units: energies in eV, forces in eV/Å, stresses in eV/Å³ (ASE's sign convention).
"""

# Argument names carry their units (energy_eV, forces_eV_A): N803 does not apply.

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: 1 eV/Å³ in GPa (CODATA 2018 elementary charge: 1.602176634e-19 J / 1e-30 m³ = 160.2176634e9 Pa).
EV_PER_A3_TO_GPA = 160.2176634
#: eV → meV.
EV_TO_MEV = 1000.0


class MetricsError(ValueError):
    """Arrays that cannot be compared (shapes, lengths, or non-finite values); the message says which."""


def _mae(error: np.ndarray) -> float:
    return float(np.mean(np.abs(error)))


def _rmse(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(error))))


def _as_array(values, name: str, ndim_tail: tuple[int, ...] = ()) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 + len(ndim_tail) or array.shape[1:] != ndim_tail:
        expected = ', '.join(['n', *map(str, ndim_tail)])
        raise MetricsError(f'{name} must have shape ({expected}), got {array.shape}.')
    if array.shape[0] == 0:
        raise MetricsError(f'{name} is empty.')
    if not np.all(np.isfinite(array)):
        raise MetricsError(f'{name} contains NaN or infinite values.')
    return array


def energy_per_atom(energy_eV, n_atoms) -> np.ndarray:
    """Energy per atom (eV/atom) of each configuration."""
    energy = _as_array(energy_eV, 'energy_eV')
    counts = np.asarray(n_atoms, dtype=int)
    if counts.shape != energy.shape:
        raise MetricsError(f'n_atoms has shape {counts.shape}, energies {energy.shape}: one count per configuration.')
    if np.any(counts <= 0):
        raise MetricsError('every configuration needs at least one atom.')
    return energy / counts


def energy_errors(reference_eV, predicted_eV, n_atoms) -> dict[str, float]:
    """MAE and RMSE of the energy per atom (meV/atom), plus the mean signed error and the RMSE without it.

    The mean signed error (``energy_offset_meV_atom``) is what a constant shift of the reference energy
    (another DFT code, other pseudopotentials) would produce; ``energy_rmse_offset_removed_meV_atom`` is the
    RMSE left after subtracting it, i.e. the standard deviation of the per-atom error.
    """
    reference = energy_per_atom(reference_eV, n_atoms)
    predicted = energy_per_atom(predicted_eV, n_atoms)
    error = (predicted - reference) * EV_TO_MEV
    offset = float(np.mean(error))
    return {
        'energy_mae_meV_atom': _mae(error),
        'energy_rmse_meV_atom': _rmse(error),
        'energy_offset_meV_atom': offset,
        'energy_rmse_offset_removed_meV_atom': _rmse(error - offset),
    }


def force_errors(reference_eV_A, predicted_eV_A, species: Sequence[str]) -> dict:
    """MAE and RMSE of the force components (meV/Å), overall and per species, and the largest deviation.

    :param reference_eV_A: reference forces of all atoms of all configurations, shape ``(n_atoms_total, 3)``.
    :param predicted_eV_A: predicted forces, same shape.
    :param species: chemical symbol of each of those atoms.
    """
    reference = _as_array(reference_eV_A, 'reference forces', (3,))
    predicted = _as_array(predicted_eV_A, 'predicted forces', (3,))
    if reference.shape != predicted.shape:
        raise MetricsError(f'reference forces {reference.shape} and predicted forces {predicted.shape} differ.')
    symbols = np.asarray(species, dtype=str)
    if symbols.shape != (reference.shape[0],):
        raise MetricsError(f'{symbols.size} species given for {reference.shape[0]} atoms.')
    error = (predicted - reference) * EV_TO_MEV
    norm_error = np.linalg.norm(error, axis=1)
    per_species_mae, per_species_rmse = {}, {}
    for symbol in sorted(set(symbols.tolist())):
        selected = error[symbols == symbol]
        per_species_mae[symbol] = _mae(selected)
        per_species_rmse[symbol] = _rmse(selected)
    return {
        'force_mae_meV_A': _mae(error),
        'force_rmse_meV_A': _rmse(error),
        'force_max_vector_error_meV_A': float(np.max(norm_error)),
        'force_mae_per_species_meV_A': per_species_mae,
        'force_rmse_per_species_meV_A': per_species_rmse,
    }


def stress_errors(reference_eV_A3, predicted_eV_A3) -> dict[str, float]:
    """MAE and RMSE of the Voigt stress components, in meV/Å³ and in GPa.

    :param reference_eV_A3: reference stresses, shape ``(n_configurations, 6)``, eV/Å³.
    :param predicted_eV_A3: predicted stresses, same shape and sign convention.
    """
    reference = _as_array(reference_eV_A3, 'reference stress', (6,))
    predicted = _as_array(predicted_eV_A3, 'predicted stress', (6,))
    if reference.shape != predicted.shape:
        raise MetricsError(f'reference stress {reference.shape} and predicted stress {predicted.shape} differ.')
    error = predicted - reference
    return {
        'stress_mae_meV_A3': _mae(error) * EV_TO_MEV,
        'stress_rmse_meV_A3': _rmse(error) * EV_TO_MEV,
        'stress_mae_GPa': _mae(error) * EV_PER_A3_TO_GPA,
        'stress_rmse_GPa': _rmse(error) * EV_PER_A3_TO_GPA,
    }


def evaluation_metrics(
    *,
    reference_energy_eV,
    predicted_energy_eV,
    n_atoms,
    reference_forces_eV_A,
    predicted_forces_eV_A,
    species: Sequence[str],
    reference_stress_eV_A3=None,
    predicted_stress_eV_A3=None,
    config_types: Sequence[str] | None = None,
) -> dict:
    """All metrics of one evaluation as one flat-ish dict (units in the keys).

    Stress metrics are included only when both reference and predicted stresses are given. With ``config_types``
    (one label per configuration, e.g. ``near-equilibrium``, ``md-hot``), ``per_config_type`` holds the energy and
    force errors of each type (with their own per-species force errors).
    """
    counts = np.asarray(n_atoms, dtype=int)
    if int(counts.sum()) != len(species):
        raise MetricsError(f'n_atoms adds up to {int(counts.sum())}, but {len(species)} atoms were given.')
    metrics = {
        'n_structures': int(counts.size),
        'n_atoms': int(counts.sum()),
        **energy_errors(reference_energy_eV, predicted_energy_eV, counts),
        **force_errors(reference_forces_eV_A, predicted_forces_eV_A, species),
    }
    if config_types is not None:
        metrics['per_config_type'] = per_config_type_errors(
            config_types, counts, reference_energy_eV, predicted_energy_eV, reference_forces_eV_A,
            predicted_forces_eV_A, species,
        )  # fmt: skip
    has_stress = reference_stress_eV_A3 is not None and predicted_stress_eV_A3 is not None
    metrics['has_stress'] = has_stress
    if has_stress:
        metrics.update(stress_errors(reference_stress_eV_A3, predicted_stress_eV_A3))
    return metrics


def per_config_type_errors(
    config_types: Sequence[str],
    n_atoms,
    reference_energy_eV,
    predicted_energy_eV,
    reference_forces_eV_A,
    predicted_forces_eV_A,
    species: Sequence[str],
) -> dict[str, dict]:
    """Energy (meV/atom) and force (meV/Å, per species too) errors of each configuration type (one per structure)."""
    counts = np.asarray(n_atoms, dtype=int)
    types = np.asarray(config_types, dtype=str)
    if types.shape != counts.shape:
        raise MetricsError(f'{types.size} configuration types given for {counts.size} configurations.')
    atom_types = np.repeat(types, counts)
    energies = (np.asarray(reference_energy_eV, float), np.asarray(predicted_energy_eV, float))
    forces = (np.asarray(reference_forces_eV_A, float), np.asarray(predicted_forces_eV_A, float))
    symbols = np.asarray(species, dtype=str)
    result = {}
    for name in sorted(set(types.tolist())):
        configurations, atoms = types == name, atom_types == name
        result[name] = {
            'n_structures': int(configurations.sum()),
            'n_atoms': int(counts[configurations].sum()),
            **energy_errors(energies[0][configurations], energies[1][configurations], counts[configurations]),
            **force_errors(forces[0][atoms], forces[1][atoms], symbols[atoms].tolist()),
        }
    return result


def parity_arrays(
    *,
    reference_energy_eV,
    predicted_energy_eV,
    n_atoms,
    reference_forces_eV_A,
    predicted_forces_eV_A,
    reference_stress_eV_A3=None,
    predicted_stress_eV_A3=None,
) -> dict[str, np.ndarray]:
    """Reference-vs-predicted arrays for parity plots (names carry their units).

    Energies per atom ``(n_structures,)``; forces ``(n_atoms_total, 3)``; stresses ``(n_structures, 6)`` if given.
    """
    arrays = {
        'energy_per_atom_reference_eV': energy_per_atom(reference_energy_eV, n_atoms),
        'energy_per_atom_predicted_eV': energy_per_atom(predicted_energy_eV, n_atoms),
        'forces_reference_eV_A': _as_array(reference_forces_eV_A, 'reference forces', (3,)),
        'forces_predicted_eV_A': _as_array(predicted_forces_eV_A, 'predicted forces', (3,)),
    }
    if reference_stress_eV_A3 is not None and predicted_stress_eV_A3 is not None:
        arrays['stress_reference_eV_A3'] = _as_array(reference_stress_eV_A3, 'reference stress', (6,))
        arrays['stress_predicted_eV_A3'] = _as_array(predicted_stress_eV_A3, 'predicted stress', (6,))
    return arrays
