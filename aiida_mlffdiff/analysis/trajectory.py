"""From one trajectory (positions, cell, symbols) to the tracer and collective MSD of a mobile species."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AnalysisError
from .msd import DEFAULT_ION_GROUPS, collective_displacement, collective_msd_from_displacement, grouped_tracer_msd
from .unwrap import DEFAULT_MAX_FRACTIONAL_STEP, check_positions, framework_drift, unwrap_positions
from .validation import as_cell, positive


@dataclass(frozen=True)
class MsdResult:
    """MSD of one trajectory: lags (ps), tracer and collective-per-ion MSD (Å²) and what D needs.

    For the error of D from this trajectory alone: the tracer MSD of disjoint groups of ions
    (``ion_group_msd_A2``, Å², ``(n_groups, n_lags)``, sizes in ``ion_group_sizes``) and the charge-weighted
    total displacement per √ion (``collective_displacement_A``, Å, ``(n_lags, 3)``).
    """

    time_ps: np.ndarray
    msd_A2: np.ndarray
    collective_msd_A2: np.ndarray
    n_ions: int
    volume_A3: float
    n_frames: int
    ion_group_msd_A2: np.ndarray | None = None
    ion_group_sizes: np.ndarray | None = None
    collective_displacement_A: np.ndarray | None = None


def species_mask(symbols, species: str, n_atoms: int) -> np.ndarray:
    """Boolean mask of the atoms of ``species``; a clear error if it is absent or symbols do not fit."""
    symbols = np.asarray(symbols, dtype=str)
    if symbols.shape != (n_atoms,):
        raise AnalysisError(f'{symbols.size} chemical symbols given for {n_atoms} atoms.')
    mask = symbols == species
    if not mask.any():
        present = ', '.join(sorted(set(symbols.tolist())))
        raise AnalysisError(f'species {species!r} is absent from the structure (present: {present}).')
    return mask


def msd_from_positions(
    positions,
    cell,
    symbols,
    species: str,
    frame_interval_ps: float,
    *,
    fractional: bool = False,
    drift_correction: bool = True,
    masses=None,
    max_fractional_step: float = DEFAULT_MAX_FRACTIONAL_STEP,
    n_ion_groups: int = DEFAULT_ION_GROUPS,
) -> MsdResult:
    """Unwrap, remove the framework drift and compute the MSD of ``species`` for all lags.

    :param positions: ``(n_frames, n_atoms, 3)`` positions, Cartesian in Å (or fractional), wrapped or not.
    :param cell: fixed cell, rows are lattice vectors in Å.
    :param symbols: chemical symbol of every atom.
    :param species: the mobile species, e.g. ``'Li'``.
    :param frame_interval_ps: time between stored frames (ps).
    :param drift_correction: subtract the centre-of-mass drift of the framework (all other species).
    :param masses: atomic masses for the framework centre of mass; equal weights if omitted.
    :param n_ion_groups: groups of ions whose MSDs are kept for the single-trajectory error (at most one per ion).
    """
    array = check_positions(positions)
    interval = positive(frame_interval_ps, 'frame_interval_ps')
    matrix = as_cell(cell)
    mask = species_mask(symbols, species, array.shape[1])
    unwrapped = unwrap_positions(array, matrix, fractional=fractional, max_fractional_step=max_fractional_step)
    drift = None
    if drift_correction:
        if mask.all():
            raise AnalysisError(
                f'every atom is {species}: there is no framework to correct the drift against; '
                'switch the drift correction off.'
            )
        if masses is not None and np.shape(masses) != (array.shape[1],):
            raise AnalysisError(f'masses must have shape ({array.shape[1]},), got {np.shape(masses)}.')
        drift = framework_drift(unwrapped, ~mask, masses)
    n_frames = array.shape[0]
    groups, sizes = grouped_tracer_msd(unwrapped, mask, drift=drift, n_groups=n_ion_groups)
    path = collective_displacement(unwrapped, mask, drift=drift)
    return MsdResult(
        time_ps=np.arange(n_frames) * interval,
        msd_A2=sizes @ groups / sizes.sum(),
        collective_msd_A2=collective_msd_from_displacement(path),
        n_ions=int(mask.sum()),
        volume_A3=float(abs(np.linalg.det(matrix))),
        n_frames=n_frames,
        ion_group_msd_A2=groups,
        ion_group_sizes=sizes,
        collective_displacement_A=path,
    )
