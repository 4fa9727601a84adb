"""Reference-quality levels: the same configurations labelled at several DFT levels, aligned and compared.

``align_training_sets`` keeps the configurations every level labelled (a configuration whose DFT failed at one level
is dropped from all), in one order, so that one seeded split gives the same train/validation/test configurations at
every level. ``compare_labels`` measures what a cheap level (e.g. Γ only) costs against the reference level (a
converged k-point mesh): energy and force errors with the conventions of :mod:`aiida_mlffdiff.metrics`, and the
distribution of the force errors per species (histogram data, meV/Å).
"""

from __future__ import annotations

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import ArrayData, Dict

from ..data.training_set import TrainingSet, configuration_key, same_configurations_problem
from ..metrics import EV_TO_MEV, evaluation_metrics
from .exit_codes import exit_code

__all__ = ('align_training_sets', 'compare_labels', 'force_error_histograms', 'label_arrays')

#: Bins of the force-error histograms: |ΔF| per Cartesian component, meV/Å, logarithmic from 0.1 to 10⁴.
HISTOGRAM_EDGES_MEV_A = np.concatenate([[0.0], np.logspace(-1, 4, 26)])


def label_arrays(training_set: TrainingSet) -> dict[str, np.ndarray]:
    """Energies (eV), atom counts, forces (eV/Å, all atoms stacked), species and stresses (eV/Å³ Voigt, or None)."""
    atoms_list = training_set.get_atoms()
    stresses = [atoms.calc.results.get('stress') for atoms in atoms_list]
    return {
        'energy_eV': np.array([atoms.get_potential_energy() for atoms in atoms_list]),
        'n_atoms': np.array([len(atoms) for atoms in atoms_list]),
        'forces_eV_A': np.concatenate([atoms.get_forces() for atoms in atoms_list]),
        'species': [symbol for atoms in atoms_list for symbol in atoms.get_chemical_symbols()],
        'stress_eV_A3': None if any(s is None for s in stresses) else np.array(stresses, dtype=float),
    }


def force_error_histograms(reference_eV_A, other_eV_A, species) -> dict[str, np.ndarray]:
    """Counts of |ΔF| per Cartesian component (meV/Å) in :data:`HISTOGRAM_EDGES_MEV_A`, all atoms and per species."""
    error = np.abs(np.asarray(other_eV_A) - np.asarray(reference_eV_A)) * EV_TO_MEV
    symbols = np.asarray(species)
    edges = HISTOGRAM_EDGES_MEV_A
    histograms = {'all': np.histogram(np.clip(error, 0, edges[-1]), edges)[0]}
    for symbol in sorted(set(symbols.tolist())):
        histograms[symbol] = np.histogram(np.clip(error[symbols == symbol], 0, edges[-1]), edges)[0]
    return histograms


@calcfunction
def align_training_sets(**sets: TrainingSet) -> dict:
    """The configurations every set holds (matched by species, cell and positions), in the order of the first set.

    :param sets: level name → TrainingSet of the same sampled configurations labelled at that level.
    :returns: the same names → TrainingSets of the common configurations (each recording ``parent_indices``);
        exit code 300 when fewer than 3 configurations are common to all.
    """
    names = list(sets)
    keys = {name: [configuration_key(atoms) for atoms in sets[name].get_atoms()] for name in names}
    common = set(keys[names[0]]).intersection(*(set(keys[name]) for name in names[1:]))
    order = [key for key in keys[names[0]] if key in common]
    if len(order) < 3:
        return exit_code(
            'ERROR_INVALID_PARAMETERS',
            f'only {len(order)} configuration(s) were labelled at every level ({", ".join(names)}): a split needs 3.',
        )
    outputs = {}
    for name in names:
        position = {key: index for index, key in enumerate(keys[name])}
        indices = [position[key] for key in order]
        dropped = sets[name].n_structures - len(indices)
        source = (
            f'{len(indices)} configurations of training set {sets[name].uuid} labelled at every level '
            f'({", ".join(names)}); {dropped} dropped'
        )
        outputs[name] = sets[name].subset(indices, source=source)
    return outputs


@calcfunction
def compare_labels(reference: TrainingSet, other: TrainingSet) -> dict:
    """Errors of ``other``'s labels (a cheap level) against ``reference``'s (the reference level), same configurations.

    :returns: ``metrics`` (Dict: energy errors per atom in meV/atom with the constant offset removed too, force
        errors in meV/Å overall and per species, stress errors when both have stresses; ``reference_level`` and
        ``level`` name the two) and ``histograms`` (ArrayData: ``edges_meV_A`` and ``counts_<species|all>`` of
        |ΔF| per component); exit code 300 when the sets hold different configurations.
    """
    problem = same_configurations_problem(reference, other)
    if problem:
        return exit_code('ERROR_INVALID_PARAMETERS', f'the compared set {problem}')
    ref, cheap = label_arrays(reference), label_arrays(other)
    metrics = evaluation_metrics(
        reference_energy_eV=ref['energy_eV'],
        predicted_energy_eV=cheap['energy_eV'],
        n_atoms=ref['n_atoms'],
        reference_forces_eV_A=ref['forces_eV_A'],
        predicted_forces_eV_A=cheap['forces_eV_A'],
        species=ref['species'],
        reference_stress_eV_A3=ref['stress_eV_A3'],
        predicted_stress_eV_A3=cheap['stress_eV_A3'],
    )
    metrics.update(reference_level=reference.reference_level, level=other.reference_level)
    histograms = ArrayData()
    histograms.set_array('edges_meV_A', HISTOGRAM_EDGES_MEV_A)
    for name, counts in force_error_histograms(ref['forces_eV_A'], cheap['forces_eV_A'], ref['species']).items():
        histograms.set_array(f'counts_{name}', counts)
    return {'metrics': Dict(metrics), 'histograms': histograms}
