"""The locality test as calcfunctions: the displaced supercells (provenance of every configuration) and the profile.

``locality_configurations`` builds, from a structure and the test's parameters, the supercell and for each central
atom (the first atom of each species) one undisplaced configuration plus ``n_samples`` configurations per radius R in
which every atom farther than R (minimum image) is displaced; ``locality_profile`` turns the predicted forces on the
central atoms into the locality error (meV/Å) per radius and species (:mod:`aiida_mlffdiff.analysis.locality`).
"""

from __future__ import annotations

import math

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import ArrayData, Dict, Float, StructureData, TrajectoryData

from ..analysis.locality import (
    inscribed_radius_A,
    locality_errors_meV_A,
    locality_radius_A,
    locality_repetitions,
    perturbed_positions,
)
from ..parameters import Option, positive, validate_parameters
from .exit_codes import exit_code

__all__ = ('LOCALITY_PARAMETERS', 'locality_configurations', 'locality_parameters', 'locality_profile')


def _radii(value) -> str | None:
    if len(value) < 2 or any(isinstance(r, bool) or not isinstance(r, int | float) for r in value):
        return 'must be at least two radii in Å'
    if not all(math.isfinite(r) and r > 0 for r in value) or len(set(value)) != len(value):
        return 'must be distinct positive radii in Å'
    return None


LOCALITY_PARAMETERS = {
    'radii_A': Option(list, None, 'radii R (Å) within which the atoms around the central atom stay fixed', _radii),
    'n_samples': Option(int, 4, 'displaced configurations per radius', lambda n: None if n >= 2 else 'must be ≥ 2'),
    'amplitude_A': Option(
        float,
        0.05,
        'displacement per Cartesian component, uniform in ±amplitude (Å)',
        lambda a: None if 0 < a <= 0.3 else 'must be in (0, 0.3] Å',
    ),
    'seed': Option(int, 0, 'seed of the displacements'),
    'threshold_meV_A': Option(float, 1.0, 'locality error (meV/Å) below which a radius counts as converged', positive),
    'max_atoms': Option(int, 5000, 'largest supercell built (atoms); a larger one is refused', positive),
}


def locality_parameters(raw: dict | None, structure_cell_A, n_atoms: int) -> dict:
    """The validated parameters completed with the supercell repetitions, or ValueError with every problem.

    The supercell is the smallest repetition of the cell whose inscribed radius exceeds the largest radius plus the
    largest displacement (√3 × amplitude), so that atoms outside every swept radius exist and move.
    """
    parameters = validate_parameters(raw, LOCALITY_PARAMETERS, 'locality parameters')
    if parameters['radii_A'] is None:
        raise ValueError('invalid locality parameters: radii_A is required (the builder derives it from the model).')
    parameters['radii_A'] = sorted(float(r) for r in parameters['radii_A'])
    reach = max(parameters['radii_A']) + math.sqrt(3) * parameters['amplitude_A']
    repetitions = locality_repetitions(np.asarray(structure_cell_A), reach)
    n_supercell = n_atoms * int(np.prod(repetitions))
    if n_supercell > parameters['max_atoms']:
        raise ValueError(
            f'invalid locality parameters: R up to {max(parameters["radii_A"]):g} Å needs a '
            f'{"x".join(map(str, repetitions))} supercell of {n_supercell} atoms, more than max_atoms '
            f'{parameters["max_atoms"]}; sweep smaller radii or raise max_atoms.'
        )
    parameters['repetitions'] = list(repetitions)
    return parameters


@calcfunction
def locality_configurations(structure: StructureData, parameters: Dict) -> TrajectoryData:
    """The supercell and its displaced configurations, per central atom: the undisplaced one first, then
    ``n_samples`` per radius (ascending). Arrays besides positions and cells: ``center`` (index of the central atom
    per configuration), ``radius_A`` (NaN for the undisplaced one) and ``n_fixed`` (atoms kept fixed)."""
    atoms = structure.get_ase()
    try:
        values = locality_parameters(parameters.get_dict(), atoms.cell[:], len(atoms))
    except ValueError as exception:
        return exit_code('ERROR_INVALID_PARAMETERS', str(exception))
    supercell = atoms.repeat(tuple(values['repetitions']))
    symbols = supercell.get_chemical_symbols()
    centers = [symbols.index(species) for species in sorted(set(symbols))]
    rng = np.random.default_rng(values['seed'])
    radii, n_samples = np.array(values['radii_A']), values['n_samples']
    positions, center_of, radius_of, n_fixed = [], [], [], []
    for center in centers:
        displaced, fixed = perturbed_positions(
            supercell.positions, supercell.cell[:], center, radii, n_samples, values['amplitude_A'], rng
        )
        positions += [supercell.positions, *displaced.reshape(-1, len(supercell), 3)]
        center_of += [center] * (1 + radii.size * n_samples)
        radius_of += [math.nan, *np.repeat(radii, n_samples)]
        n_fixed += [len(supercell), *np.repeat(fixed, n_samples)]
    positions = np.array(positions)
    trajectory = TrajectoryData()
    trajectory.set_trajectory(symbols, positions, cells=np.repeat(supercell.cell[:][None], len(positions), axis=0))
    trajectory.set_array('center', np.array(center_of, dtype=np.int64))
    trajectory.set_array('radius_A', np.array(radius_of, dtype=float))
    trajectory.set_array('n_fixed', np.array(n_fixed, dtype=np.int64))
    trajectory.base.attributes.set_many(
        {
            'repetitions': values['repetitions'],
            'centers': centers,
            'center_species': [symbols[c] for c in centers],
            'radii_A': values['radii_A'],
            'n_samples': n_samples,
            'amplitude_A': values['amplitude_A'],
            'max_displacement_A': math.sqrt(3) * values['amplitude_A'],
            'inscribed_radius_A': inscribed_radius_A(supercell.cell[:]),
            'n_atoms_supercell': len(supercell),
        }
    )
    return trajectory


@calcfunction
def locality_profile(
    configurations: TrajectoryData, predictions: ArrayData, receptive_field_A: Float, threshold_meV_A: Float
) -> Dict:
    """The locality error (meV/Å) per radius for each central atom's species, R/(2 r_f), and the radius from which
    the error stays below ``threshold_meV_A`` (None: not reached within the sweep).

    :param receptive_field_A: the model's receptive field r_f (Å): cutoff × message-passing layers.
    """
    forces = predictions.get_array('forces_eV_A')
    center, radius = configurations.get_array('center'), configurations.get_array('radius_A')
    if forces.shape[0] != center.size:
        return exit_code(
            'ERROR_INCOMPATIBLE_INPUTS', f'{forces.shape[0]} predictions for {center.size} configurations.'
        )
    attributes = configurations.base.attributes
    radii, n_samples = np.array(attributes.get('radii_A')), attributes.get('n_samples')
    r_f, threshold = receptive_field_A.value, threshold_meV_A.value
    per_species = {}
    for atom, species in zip(attributes.get('centers'), attributes.get('center_species'), strict=True):
        rows = np.flatnonzero(center == atom)
        reference = rows[np.isnan(radius[rows])][0]
        displaced = rows[~np.isnan(radius[rows])]
        on_center = forces[displaced, atom].reshape(radii.size, n_samples, 3)
        errors = locality_errors_meV_A(on_center, forces[reference, atom])
        per_species[species] = {
            'center_index': int(atom),
            'errors_meV_A': errors.tolist(),
            'radius_below_threshold_A': locality_radius_A(radii, errors, threshold),
        }
    return Dict(
        {
            'radii_A': radii.tolist(),
            'R_over_2rf': (radii / (2 * r_f)).tolist(),
            'receptive_field_A': r_f,
            'threshold_meV_A': threshold,
            'max_displacement_A': attributes.get('max_displacement_A'),
            'n_atoms_supercell': attributes.get('n_atoms_supercell'),
            'repetitions': attributes.get('repetitions'),
            'species': per_species,
        }
    )
