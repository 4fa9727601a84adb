"""The locality test's numpy core: supercell size, who is fixed, the error and the converged radius."""

import numpy as np
import pytest

from aiida_mlffdiff.analysis.locality import (
    inscribed_radius_A,
    locality_errors_meV_A,
    locality_radius_A,
    locality_repetitions,
    perturbed_positions,
)


def test_inscribed_radius_and_repetitions_of_a_hexagonal_cell():
    cell = np.array([[4.0, 0.0, 0.0], [-2.0, 2 * np.sqrt(3), 0.0], [0.0, 0.0, 10.0]])
    assert inscribed_radius_A(cell) == pytest.approx(np.sqrt(3))  # half the distance between (100) faces
    repetitions = locality_repetitions(cell, 5.0)
    assert repetitions == (3, 3, 2)  # 10 Å along c is not more than twice 5 Å
    assert inscribed_radius_A(cell * np.array(repetitions)[:, None]) > 5.0


def test_atoms_within_the_radius_stay_fixed_and_the_others_move():
    rng = np.random.default_rng(0)
    cell = np.eye(3) * 12.0
    positions = rng.uniform(0, 12.0, size=(60, 3))
    radii = np.array([2.0, 4.0, 6.0])
    out, n_fixed = perturbed_positions(positions, cell, 7, radii, 3, 0.05, rng)
    assert out.shape == (3, 3, 60, 3)
    delta = positions - positions[7]
    delta -= 12.0 * np.round(delta / 12.0)
    distance = np.linalg.norm(delta, axis=1)
    for index, radius in enumerate(radii):
        moved = np.abs(out[index] - positions).max(axis=(0, 2)) > 0
        np.testing.assert_array_equal(moved, distance > radius)
        assert n_fixed[index] == (distance <= radius).sum()
    assert np.abs(out - positions).max() <= 0.05
    assert n_fixed[0] < n_fixed[1] < n_fixed[2]


def test_errors_are_zero_for_an_unchanged_force_and_the_radius_is_where_they_stay_small():
    reference = np.array([0.1, -0.2, 0.3])
    forces = np.repeat(reference[None, None], 2, axis=1).repeat(4, axis=0)  # 4 radii × 2 samples
    forces[0] += [[0.01, 0, 0], [-0.01, 0, 0]]  # 10 meV/Å at the smallest radius
    forces[1] += [[0.0, 0.002, 0], [0.0, 0, 0]]  # 2 and 0 meV/Å: RMS √2 meV/Å
    errors = locality_errors_meV_A(forces, reference)
    assert errors == pytest.approx([10.0, np.sqrt(2.0), 0.0, 0.0])
    radii = np.array([2.0, 4.0, 8.0, 9.0])
    assert locality_radius_A(radii, errors, 1.0) == 8.0
    assert locality_radius_A(radii, errors, 5.0) == 4.0
    assert locality_radius_A(radii, errors, 20.0) == 2.0
    assert locality_radius_A(radii, np.array([5.0, 0.1, 2.0, 3.0]), 1.0) is None  # not reached in the sweep
