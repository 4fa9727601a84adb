"""Unwrapping of periodic coordinates and removal of the framework's centre-of-mass drift."""

from __future__ import annotations

import numpy as np

from .errors import AnalysisError
from .validation import as_cell, as_finite_array

#: Largest frame-to-frame displacement, as a fraction of the cell width along any lattice direction,
#: that is accepted when unwrapping. The unwrapping is unique below 0.5; the margin guards against
#: atoms whose true jump was just above half a cell and got folded back.
DEFAULT_MAX_FRACTIONAL_STEP = 0.4


def check_positions(positions, name: str = 'positions') -> np.ndarray:
    """Return positions as a float array of shape ``(n_frames, n_atoms, 3)`` or raise a clear error."""
    array = as_finite_array(positions, name)
    if array.ndim != 3 or array.shape[2] != 3:
        raise AnalysisError(f'{name} must have shape (n_frames, n_atoms, 3), got {array.shape}.')
    if array.shape[0] < 2:
        raise AnalysisError(f'{name} needs at least 2 frames, got {array.shape[0]}.')
    if array.shape[1] < 1:
        raise AnalysisError(f'{name} holds no atoms.')
    return array


def unwrap_positions(
    positions,
    cell,
    *,
    fractional: bool = False,
    max_fractional_step: float = DEFAULT_MAX_FRACTIONAL_STEP,
) -> np.ndarray:
    """Unwrap positions in a fixed (also triclinic) cell and return unwrapped Cartesian positions (Å).

    :param positions: ``(n_frames, n_atoms, 3)`` wrapped (or already unwrapped) coordinates, Cartesian in
        Å or fractional if ``fractional`` is true.
    :param cell: 3x3 matrix whose rows are the lattice vectors (Å).
    :param max_fractional_step: refuse trajectories in which an atom moves more than this fraction of the
        cell width along a lattice direction between two consecutive frames (frames too far apart to be
        unwrapped safely).
    :raises AnalysisError: on bad shapes, NaN/inf, a singular cell or frames too far apart.
    """
    array = check_positions(positions)
    matrix = as_cell(cell)
    frac = array if fractional else array @ np.linalg.inv(matrix)
    steps = np.diff(frac, axis=0)
    steps -= np.round(steps)
    largest = np.abs(steps).max(initial=0.0)
    if largest > max_fractional_step:
        frame, atom, axis = (int(i) for i in np.unravel_index(np.abs(steps).argmax(), steps.shape))
        raise AnalysisError(
            f'frames are too far apart to unwrap safely: atom {atom} moved {largest:.2f} of the cell width '
            f'along lattice vector {axis + 1} between frames {frame} and {frame + 1} (limit '
            f'{max_fractional_step}); store frames more often.'
        )
    unwrapped = np.empty_like(frac)
    unwrapped[0] = frac[0]
    np.cumsum(steps, axis=0, out=unwrapped[1:])
    unwrapped[1:] += frac[0]
    return unwrapped @ matrix


def framework_drift(positions, framework_mask, masses=None) -> np.ndarray:
    """Displacement (Å) of the framework's centre of mass from frame 0, shape ``(n_frames, 3)``.

    :param positions: unwrapped Cartesian positions ``(n_frames, n_atoms, 3)`` in Å.
    :param framework_mask: boolean array ``(n_atoms,)``, true for the non-mobile (framework) atoms.
    :param masses: optional atomic masses ``(n_atoms,)`` (any unit); equal masses if omitted.
    """
    array = check_positions(positions)
    mask = np.asarray(framework_mask, dtype=bool)
    if mask.shape != (array.shape[1],):
        raise AnalysisError(f'framework_mask must have shape ({array.shape[1]},), got {mask.shape}.')
    if not mask.any():
        raise AnalysisError('framework_mask selects no atom: there is no framework to correct the drift against.')
    if masses is None:
        weights = np.ones(mask.sum())
    else:
        masses = as_finite_array(masses, 'masses', ndim=1)
        if masses.shape != mask.shape:
            raise AnalysisError(f'masses must have shape {mask.shape}, got {masses.shape}.')
        weights = masses[mask]
        if np.any(weights < 0) or weights.sum() <= 0:
            raise AnalysisError('framework masses must be non-negative with a positive sum.')
    indices = np.flatnonzero(mask)
    contiguous = np.all(np.diff(indices) == 1)  # a slice is a view: no copy of the framework positions
    framework = array[:, indices[0] : indices[-1] + 1] if contiguous else array[:, mask]
    centre = (weights / weights.sum()) @ framework  # (n,) @ (frames, n, 3) → (frames, 3)
    return centre - centre[0]


def remove_framework_drift(positions, framework_mask, masses=None) -> np.ndarray:
    """Subtract the displacement of the framework's centre of mass from every atom (a new array, Å).

    Arguments as in :func:`framework_drift`. The MSD functions accept the drift directly and avoid this
    copy; this function is for users who want corrected positions.
    """
    return check_positions(positions) - framework_drift(positions, framework_mask, masses)[:, None, :]
