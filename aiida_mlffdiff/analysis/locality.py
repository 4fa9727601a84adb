"""The locality test of an MLFF: how far a perturbation reaches into the force on one atom (numpy only).

Protocol (the MLFF-for-solid-electrolytes perspective): in a large supercell, fix every atom within a radius R of a
central atom and displace the others at random; the spread of the force on the central atom over such
configurations is the locality error at R. A model whose atomic energies see atoms up to its receptive field r_f
(cutoff × message-passing layers) gives forces that depend on atoms up to 2 r_f: beyond R = 2 r_f (plus the largest
displacement) the error is zero to round-off, inside it need not be.

Here the error at R is the root mean square over the samples of |F_s − F_0| (meV/Å), F_0 the force on the central
atom in the undisplaced supercell: zero exactly when the perturbation does not reach the atom.
"""

from __future__ import annotations

import numpy as np

__all__ = (
    'inscribed_radius_A',
    'locality_errors_meV_A',
    'locality_radius_A',
    'locality_repetitions',
    'perturbed_positions',
)


def inscribed_radius_A(cell_A: np.ndarray) -> float:
    """Half the smallest distance between opposite faces of the cell (Å): a sphere of this radius around any point
    holds no periodic image of that point's neighbourhood twice."""
    cell = np.asarray(cell_A, dtype=float)
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return 0.5 * min(widths)


def locality_repetitions(cell_A: np.ndarray, radius_A: float) -> tuple[int, int, int]:
    """The smallest repetitions (n_a, n_b, n_c) of the cell whose inscribed radius exceeds ``radius_A`` (Å)."""
    cell = np.asarray(cell_A, dtype=float)
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return tuple(int(np.floor(2 * radius_A / width * (1 + 1e-9))) + 1 for width in widths)


def _minimum_image_distances(positions_A: np.ndarray, cell_A: np.ndarray, center: int) -> np.ndarray:
    """Distances (Å) of every atom to atom ``center`` under the minimum-image convention (any cell shape: the
    27 neighbouring images are searched, exact when the inscribed radius exceeds the distances that matter)."""
    cell = np.asarray(cell_A, dtype=float)
    fractional = np.linalg.solve(cell.T, (positions_A - positions_A[center]).T).T
    fractional -= np.round(fractional)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)
    vectors = (fractional[:, None, :] + shifts[None, :, :]) @ cell
    return np.linalg.norm(vectors, axis=2).min(axis=1)


def perturbed_positions(
    positions_A: np.ndarray,
    cell_A: np.ndarray,
    center: int,
    radii_A: np.ndarray,
    n_samples: int,
    amplitude_A: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Configurations for one central atom: every atom farther than R from it displaced, the others fixed.

    Each Cartesian component of a displacement is uniform in [−amplitude, amplitude] (Å), so no atom moves more
    than √3 × amplitude.

    :returns: ``(positions, n_fixed)``: positions (Å) of shape ``(n_radii, n_samples, n_atoms, 3)`` and the number
        of fixed atoms (the central one included) per radius.
    """
    positions = np.asarray(positions_A, dtype=float)
    distances = _minimum_image_distances(positions, cell_A, center)
    radii = np.asarray(radii_A, dtype=float)
    out = np.repeat(positions[None, None], len(radii), axis=0).repeat(n_samples, axis=1)
    n_fixed = np.zeros(len(radii), dtype=np.int64)
    for index, radius in enumerate(radii):
        moving = distances > radius
        n_fixed[index] = int((~moving).sum())
        displacement = rng.uniform(-amplitude_A, amplitude_A, size=(n_samples, int(moving.sum()), 3))
        out[index][:, moving] += displacement
    return out, n_fixed


def locality_errors_meV_A(center_forces_eV_A: np.ndarray, reference_force_eV_A: np.ndarray) -> np.ndarray:
    """RMS over the samples of |F_s − F_0| (meV/Å) per radius.

    :param center_forces_eV_A: forces on the central atom, ``(n_radii, n_samples, 3)`` (eV/Å).
    :param reference_force_eV_A: its force in the undisplaced supercell, ``(3,)`` (eV/Å).
    """
    forces = np.asarray(center_forces_eV_A, dtype=float)
    deviation = np.linalg.norm(forces - np.asarray(reference_force_eV_A, dtype=float), axis=-1)
    return 1000.0 * np.sqrt((deviation**2).mean(axis=-1))


def locality_radius_A(radii_A: np.ndarray, errors_meV_A: np.ndarray, threshold_meV_A: float) -> float | None:
    """The smallest swept radius (Å) from which on every error is below ``threshold_meV_A``; None if the error at
    the largest radius is not (the sweep did not reach far enough)."""
    radii, errors = np.asarray(radii_A, dtype=float), np.asarray(errors_meV_A, dtype=float)
    order = np.argsort(radii)
    radii, errors = radii[order], errors[order]
    below = errors < threshold_meV_A
    if not below[-1]:
        return None
    first = len(below) - int(np.argmin(below[::-1])) if not below.all() else 0
    return float(radii[first])
