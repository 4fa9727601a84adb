"""A small Ewald summation for point charges in a periodic cell (numpy + scipy only).

The electrostatic energy of charges ``q`` (units of e) at Cartesian positions (Å) in a neutral periodic cell is
``E = ½ qᵀ Φ q`` (eV), with the pair matrix ``Φ`` of :func:`ewald_matrix` (real-space, reciprocal-space and self
terms). Sites with charge 0 (empty sites) do not contribute, so one matrix serves every choice of occupied sites.
Charged cells are refused by :func:`ewald_energy` (no background correction here).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

#: e²/(4πε₀) in eV·Å (CODATA 2018).
COULOMB_EV_A = 14.399645478425668


def ewald_matrix(cell: np.ndarray, positions: np.ndarray, accuracy: float = 1e-10) -> np.ndarray:
    """Ewald pair matrix Φ (eV/e², N×N) of N sites in a periodic ``cell`` (3×3, rows are vectors, Å).

    The splitting parameter α (1/Å) balances real and reciprocal work; both sums are cut where their terms fall
    below ``accuracy`` (relative), so the energy converges to about 1e-8 eV for cells of 10–50 sites.
    """
    cell = np.asarray(cell, dtype=float)
    positions = np.asarray(positions, dtype=float)
    n_sites = len(positions)
    volume = abs(np.linalg.det(cell))
    alpha = np.sqrt(np.pi) * (max(n_sites, 1) / volume**2) ** (1 / 6)
    log_accuracy = np.sqrt(-np.log(accuracy))
    real_cutoff = log_accuracy / alpha
    reciprocal_cutoff = 2 * alpha * log_accuracy
    delta = positions[:, None, :] - positions[None, :, :]  # r_i − r_j

    # real space: Σ_n erfc(α|r_ij + n|)/|r_ij + n| over lattice vectors n (n = 0 skipped for i = j)
    heights = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)  # plane spacings
    span = np.linalg.norm(delta, axis=-1).max() if n_sites else 0.0
    n_max = np.ceil((real_cutoff + span) / heights).astype(int)
    grid = np.stack(
        np.meshgrid(*[np.arange(-m, m + 1) for m in n_max], indexing='ij'),
        axis=-1,
    ).reshape(-1, 3)
    translations = grid @ cell
    phi = np.zeros((n_sites, n_sites))
    for translation in translations:
        distance = np.linalg.norm(delta + translation, axis=-1)
        mask = (distance > 1e-12) & (distance < real_cutoff)
        phi[mask] += erfc(alpha * distance[mask]) / distance[mask]

    # reciprocal space: (4π/V) Σ_{G≠0} exp(−G²/4α²)/G² cos(G·r_ij)
    reciprocal = 2 * np.pi * np.linalg.inv(cell).T
    m_max = np.ceil(reciprocal_cutoff * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)  # G·a_k = 2π m_k
    grid = np.stack(
        np.meshgrid(*[np.arange(-m, m + 1) for m in m_max], indexing='ij'),
        axis=-1,
    ).reshape(-1, 3)
    vectors = grid @ reciprocal
    g_squared = np.einsum('ij,ij->i', vectors, vectors)
    keep = (g_squared > 1e-12) & (g_squared < reciprocal_cutoff**2)
    vectors, g_squared = vectors[keep], g_squared[keep]
    weights = np.exp(-g_squared / (4 * alpha**2)) / g_squared
    phases = positions @ vectors.T  # N × G
    cos, sin = np.cos(phases), np.sin(phases)
    # cos(G·(r_i − r_j)) = cos_i cos_j + sin_i sin_j
    phi += (4 * np.pi / volume) * ((cos * weights) @ cos.T + (sin * weights) @ sin.T)

    # self term: −α/√π Σ q_i², i.e. −2α/√π on the diagonal of ½ qᵀΦq
    phi[np.diag_indices(n_sites)] -= 2 * alpha / np.sqrt(np.pi)
    return COULOMB_EV_A * phi


def ewald_energy(cell: np.ndarray, positions: np.ndarray, charges: np.ndarray) -> float:
    """Electrostatic energy (eV) of point ``charges`` (e) at ``positions`` (Å) in a neutral periodic ``cell`` (Å).

    :raises ValueError: the charges do not sum to zero.
    """
    charges = np.asarray(charges, dtype=float)
    if abs(charges.sum()) > 1e-8:
        raise ValueError(f'the cell is not neutral (total charge {charges.sum():g} e): Ewald needs a neutral cell.')
    return float(0.5 * charges @ ewald_matrix(cell, positions) @ charges)
