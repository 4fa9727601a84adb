"""Shared input checks that raise :class:`AnalysisError` with a message naming the problem."""

from __future__ import annotations

import numpy as np

from .errors import AnalysisError


def as_finite_array(values, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``values`` as a float array, refusing NaN/inf and (optionally) the wrong dimensionality."""
    array = np.asarray(values, dtype=float)
    if ndim is not None and array.ndim != ndim:
        raise AnalysisError(f'{name} must be a {ndim}-dimensional array, got shape {array.shape}.')
    if array.size == 0:
        raise AnalysisError(f'{name} is empty.')
    if np.isfinite(array.sum()):  # one pass, no temporary; a finite sum means every value is finite
        return array
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AnalysisError(f'{name} contains {int(bad.sum())} NaN/inf value(s), the first at index {first}.')
    return array


def as_cell(cell) -> np.ndarray:
    """Return a 3x3 cell matrix (rows are lattice vectors in Å) and check it is not singular."""
    matrix = as_finite_array(cell, 'cell', ndim=2)
    if matrix.shape != (3, 3):
        raise AnalysisError(f'cell must be a 3x3 matrix of lattice vectors (Å), got shape {matrix.shape}.')
    volume = abs(np.linalg.det(matrix))
    if volume < 1e-6:
        raise AnalysisError(f'cell is singular (volume {volume:.3g} Å³).')
    return matrix


def positive(value: float, name: str) -> float:
    """Return ``value`` as float if it is finite and > 0."""
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise AnalysisError(f'{name} must be a positive number, got {value}.')
    return value
