"""Interatomic force constants (IFCs) of a model against a reference: parity, sum rule, symmetry, shells, phonons.

Numpy only. Force constants are in phonopy's compact layout: 2nd order Φ2 (n_primitive, n_supercell, 3, 3) in eV/Å²,
3rd order Φ3 (n_primitive, n_supercell, n_supercell, 3, 3, 3) in eV/Å³, the first index running over the supercell
atoms that belong to the primitive cell (phonopy's ``p2s_map``). Frequencies are in THz (negative = imaginary).
"""

from __future__ import annotations

import numpy as np

__all__ = (
    'acoustic_sum_rule_residual',
    'gaussian_dos',
    'pair_distances_A',
    'parity_metrics',
    'shell_errors',
    'spectrum_metrics',
    'symmetry_residual',
)


def parity_metrics(reference: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Element-wise agreement of two arrays of force constants (same shape, same unit).

    :returns: ``n`` (elements), ``mae``, ``rmse``, ``max_abs_error`` (the unit of the inputs), ``r2`` (1 − SS_res /
        SS_tot about the reference mean; 1 is perfect, ≤ 0 no better than the mean) and ``reference_rms``.
    :raises ValueError: different shapes, no element, or a non-finite value.
    """
    reference, predicted = np.asarray(reference, dtype=float), np.asarray(predicted, dtype=float)
    if reference.shape != predicted.shape:
        raise ValueError(f'force constants of different shapes: {reference.shape} and {predicted.shape}.')
    if reference.size == 0:
        raise ValueError('no force constant to compare.')
    if not (np.isfinite(reference).all() and np.isfinite(predicted).all()):
        raise ValueError('non-finite force constants.')
    difference = (predicted - reference).ravel()
    total = float(np.sum((reference - reference.mean()) ** 2))
    return {
        'n': int(reference.size),
        'mae': float(np.mean(np.abs(difference))),
        'rmse': float(np.sqrt(np.mean(difference**2))),
        'max_abs_error': float(np.max(np.abs(difference))),
        'r2': float(1.0 - np.sum(difference**2) / total) if total > 0 else float('nan'),
        'reference_rms': float(np.sqrt(np.mean(reference**2))),
    }


def acoustic_sum_rule_residual(force_constants: np.ndarray) -> float:
    """The largest |Σ_j Φ(p, …, j)| over the last atom index (eV/Å² or eV/Å³): zero for force constants that obey
    the acoustic (translational) sum rule. Works for compact Φ2 (sum over axis 1) and Φ3 (sum over axis 2)."""
    fc = np.asarray(force_constants, dtype=float)
    if fc.ndim == 4:
        return float(np.max(np.abs(fc.sum(axis=1))))
    if fc.ndim == 6:
        return float(np.max(np.abs(fc.sum(axis=2))))
    raise ValueError(f'expected compact force constants of 4 (2nd order) or 6 (3rd order) dimensions, got {fc.ndim}.')


def symmetry_residual(fc2_full: np.ndarray, rotations_cartesian: np.ndarray, permutations: np.ndarray) -> float:
    """The largest |Φ(g i, g j) − R Φ(i, j) Rᵀ| over the space-group operations g = (R, permutation) of the
    supercell (eV/Å²): zero for 2nd-order force constants with the crystal's symmetry.

    :param fc2_full: Φ2 of every supercell pair, (n, n, 3, 3).
    :param rotations_cartesian: (n_ops, 3, 3) rotation matrices in Cartesian coordinates.
    :param permutations: (n_ops, n) the atom each atom is sent to by each operation.
    """
    fc = np.asarray(fc2_full, dtype=float)
    worst = 0.0
    for rotation, permutation in zip(np.asarray(rotations_cartesian), np.asarray(permutations), strict=True):
        rotated = np.einsum('ab,ijbc,dc->ijad', rotation, fc, rotation)
        moved = fc[np.ix_(permutation, permutation)]
        worst = max(worst, float(np.max(np.abs(moved - rotated))))
    return worst


def pair_distances_A(positions_A: np.ndarray, cell_A: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Minimum-image distances (Å) from the atoms ``first`` (indices) to every atom of the periodic supercell,
    shape (len(first), n)."""
    positions, cell = np.asarray(positions_A, dtype=float), np.asarray(cell_A, dtype=float)
    vectors = (positions[None, :, :] - positions[np.asarray(first)][:, None, :]).reshape(-1, 3)
    fractional = np.linalg.solve(cell.T, vectors.T).T
    fractional -= np.round(fractional)
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)
    candidates = (fractional[:, None, :] + shifts[None, :, :]) @ cell
    distances = np.min(np.linalg.norm(candidates, axis=2), axis=1)
    return distances.reshape(len(first), len(positions))


def shell_errors(
    reference: np.ndarray, predicted: np.ndarray, distances_A: np.ndarray, tolerance_A: float = 0.05
) -> list[dict[str, float]]:
    """2nd-order errors per neighbour shell (pairs at the same distance within ``tolerance_A``), nearest first.

    :param reference: compact Φ2 (n_primitive, n, 3, 3) in eV/Å²; ``predicted`` the same.
    :param distances_A: (n_primitive, n) pair distances (:func:`pair_distances_A`).
    :returns: per shell ``distance_A``, ``pairs``, ``mae`` (eV/Å²), ``reference_norm`` (the mean Frobenius norm of
        the reference 3×3 blocks, eV/Å²) and ``relative_error`` (mean ‖ΔΦ‖ / mean ‖Φ_ref‖).
    """
    reference, predicted = np.asarray(reference, dtype=float), np.asarray(predicted, dtype=float)
    distances = np.asarray(distances_A, dtype=float)
    order = np.argsort(distances, axis=None)
    flat = distances.ravel()[order]
    shells, start = [], 0
    for index in range(1, flat.size + 1):
        if index == flat.size or flat[index] - flat[start] > tolerance_A:
            shells.append((start, index))
            start = index
    blocks_ref = reference.reshape(-1, 3, 3)
    blocks = predicted.reshape(-1, 3, 3)
    result = []
    for start, stop in shells:
        members = order[start:stop]
        difference = np.linalg.norm(blocks[members] - blocks_ref[members], axis=(1, 2))
        norm = float(np.mean(np.linalg.norm(blocks_ref[members], axis=(1, 2))))
        result.append({
            'distance_A': float(np.mean(flat[start:stop])),
            'pairs': int(members.size),
            'mae': float(np.mean(np.abs(blocks[members] - blocks_ref[members]))),
            'reference_norm': norm,
            'relative_error': float(np.mean(difference) / norm) if norm > 0 else float('nan'),
        })  # fmt: skip
    return result


def gaussian_dos(
    frequencies_THz: np.ndarray, weights: np.ndarray, grid_THz: np.ndarray, sigma_THz: float
) -> np.ndarray:
    """Phonon density of states (states/THz per primitive cell: integrates to the number of bands) on ``grid_THz``,
    from mesh frequencies (n_q, n_bands) with q-point weights, Gaussian-broadened by ``sigma_THz``."""
    frequencies = np.asarray(frequencies_THz, dtype=float)
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    grid = np.asarray(grid_THz, dtype=float)
    dos = np.zeros_like(grid)
    for row, weight in zip(frequencies, weights, strict=True):
        dos += weight * np.exp(-0.5 * ((grid[:, None] - row[None, :]) / sigma_THz) ** 2).sum(axis=1)
    return dos / (sigma_THz * np.sqrt(2 * np.pi))


def spectrum_metrics(
    reference_bands_THz: np.ndarray,
    bands_THz: np.ndarray,
    reference_mesh_THz: np.ndarray,
    mesh_THz: np.ndarray,
    mesh_weights: np.ndarray,
    sigma_THz: float = 0.2,
) -> dict[str, float]:
    """Phonon errors of a model against the reference on the same q-path and q-mesh.

    :returns: ``band_rmse_THz`` (all branches on the path, bands sorted by frequency at each q), ``mesh_rmse_THz``
        (weighted over the mesh: the DOS-weighted frequency error), ``mean_shift_THz`` (model − reference, mesh),
        ``dos_rmse`` (states/THz, both DOS Gaussian-broadened by ``sigma_THz`` on one grid), ``dos_overlap`` (∫ min
        of the two normalised DOS: 1 = identical) and ``max_frequency_THz`` of each.
    """
    reference_bands, bands = np.sort(reference_bands_THz, axis=-1), np.sort(bands_THz, axis=-1)
    reference_mesh, mesh = np.sort(reference_mesh_THz, axis=-1), np.sort(mesh_THz, axis=-1)
    if reference_bands.shape != bands.shape or reference_mesh.shape != mesh.shape:
        raise ValueError('the model and the reference phonons are not on the same q-points.')
    weights = np.asarray(mesh_weights, dtype=float) / np.sum(mesh_weights)
    high = max(float(reference_mesh.max()), float(mesh.max())) + 5 * sigma_THz
    low = min(float(reference_mesh.min()), float(mesh.min()), 0.0) - 5 * sigma_THz
    grid = np.linspace(low, high, 400)
    reference_dos = gaussian_dos(reference_mesh, weights, grid, sigma_THz)
    dos = gaussian_dos(mesh, weights, grid, sigma_THz)
    step = grid[1] - grid[0]
    bands_count = reference_mesh.shape[-1]
    return {
        'band_rmse_THz': float(np.sqrt(np.mean((bands - reference_bands) ** 2))),
        'mesh_rmse_THz': float(np.sqrt(np.sum(weights[:, None] * (mesh - reference_mesh) ** 2) / bands_count)),
        'mean_shift_THz': float(np.sum(weights[:, None] * (mesh - reference_mesh)) / bands_count),
        'dos_rmse': float(np.sqrt(np.mean((dos - reference_dos) ** 2))),
        'dos_overlap': float(np.sum(np.minimum(dos, reference_dos)) * step / bands_count),
        'max_frequency_THz': float(mesh.max()),
        'reference_max_frequency_THz': float(reference_mesh.max()),
    }
