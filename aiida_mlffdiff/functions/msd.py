"""``msd_from_trajectories``: TrajectoryData node(s) → one :class:`~aiida_mlffdiff.data.MsdData`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, TrajectoryData
from ase.data import atomic_masses, atomic_numbers

from ..analysis import AnalysisError, msd_from_positions
from ..analysis.units import FS_TO_PS
from ..data.msd import MsdData
from ..data.trajectories import TrajectoryArrays
from ..parameters import REQUIRED, Option, fraction, one_of, positive, validate_parameters
from .exit_codes import exit_code

MSD_PARAMETERS = {
    'species': Option(str, 'Li', 'chemical symbol of the mobile species'),
    'frame_interval_fs': Option(float, REQUIRED, 'time between stored frames (fs)', positive),
    'mode': Option(
        str,
        'replicas',
        "'replicas': each trajectory is an independent replica; 'consecutive': one run in parts",
        one_of('replicas', 'consecutive'),
    ),
    'temperature_K': Option((float, type(None)), None, 'temperature of the run (K)', positive),
    'drift_correction': Option(bool, True, "subtract the framework's centre-of-mass drift"),
    'charge': Option(float, 1.0, 'charge number of the mobile ion (e)'),
    'max_fractional_step': Option(
        float, 0.4, 'largest frame-to-frame move accepted when unwrapping (cell widths)', fraction
    ),
}


def arrays_from_node(node: TrajectoryData, label: str = '') -> TrajectoryArrays:
    """Read a TrajectoryData; refuse a missing or changing cell."""
    cells = node.get_cells()
    if cells is None:
        raise AnalysisError(f'trajectory {label or node.pk} has no cell: periodic positions need one.')
    if not np.allclose(cells, cells[0], rtol=0, atol=1e-6):
        raise AnalysisError(
            f'trajectory {label or node.pk} has a changing cell; only fixed-cell (NVT) runs are supported.'
        )
    return TrajectoryArrays(list(node.symbols), node.get_positions(), cells[0], label)


def combine_trajectories(parts: Sequence[TrajectoryArrays], mode: str) -> list[TrajectoryArrays]:
    """Join the parts of one run (``consecutive``) or align independent replicas (``replicas``).

    Replicas of different lengths are cut to the shortest, so that every replica has the same lags.
    """
    if not parts:
        raise AnalysisError('no trajectory given.')
    first = parts[0]
    for part in parts[1:]:
        if part.symbols != first.symbols:
            raise AnalysisError(f'trajectory {part.label} has different atoms than {first.label}.')
        if not np.allclose(part.cell, first.cell, rtol=0, atol=1e-6):
            raise AnalysisError(f'trajectory {part.label} has a different cell than {first.label}.')
    if mode == 'consecutive':
        positions = np.concatenate([part.positions for part in parts])
        return [TrajectoryArrays(first.symbols, positions, first.cell, '+'.join(p.label for p in parts))]
    shortest = min(part.positions.shape[0] for part in parts)
    return [TrajectoryArrays(p.symbols, p.positions[:shortest], p.cell, p.label) for p in parts]


def compute_msd_data(parts: Sequence[TrajectoryArrays], parameters: dict) -> MsdData:
    """The calculation behind :func:`msd_from_trajectories`, usable on unstored data (raises AnalysisError)."""
    params = validate_parameters(parameters, MSD_PARAMETERS, 'MSD parameters')
    replicas = combine_trajectories(parts, params['mode'])
    masses = [atomic_masses[atomic_numbers[s]] if s in atomic_numbers else 1.0 for s in replicas[0].symbols]
    results = [
        msd_from_positions(
            replica.positions,
            replica.cell,
            replica.symbols,
            params['species'],
            params['frame_interval_fs'] * FS_TO_PS,
            drift_correction=params['drift_correction'],
            masses=masses,
            max_fractional_step=params['max_fractional_step'],
        )
        for replica in replicas
    ]
    # One trajectory has no replica spread: keep what its own error needs (ion groups, collective path). An
    # ensemble takes its error from the replicas, and the groups of hundreds of replicas would only weigh.
    single = len(results) == 1
    return MsdData(
        time_ps=results[0].time_ps,
        msd_A2=np.array([r.msd_A2 for r in results]),
        collective_msd_A2=np.array([r.collective_msd_A2 for r in results]),
        ion_group_msd_A2=results[0].ion_group_msd_A2 if single else None,
        ion_group_sizes=results[0].ion_group_sizes if single else None,
        collective_displacement_A=results[0].collective_displacement_A if single else None,
        species=params['species'],
        n_ions=results[0].n_ions,
        volume_A3=results[0].volume_A3,
        temperature_K=params['temperature_K'],
        charge=params['charge'],
        source=f'{len(parts)} trajectory part(s), mode {params["mode"]}: ' + ', '.join(p.label for p in parts),
    )


@calcfunction
def msd_from_trajectories(parameters: Dict, **trajectories: TrajectoryData) -> MsdData:
    """Tracer and collective MSD of the mobile species from one or more fixed-cell trajectories.

    :param parameters: see ``MSD_PARAMETERS`` (species, frame_interval_fs, mode, temperature_K, ...).
    :param trajectories: TrajectoryData nodes; their link labels give the order of consecutive parts.
    :returns: an :class:`MsdData` with one MSD curve per replica, or exit code 300/310/340.
    """
    if not trajectories:
        return exit_code('ERROR_MISSING_INPUT', 'no trajectory given.')
    try:
        params = validate_parameters(parameters.get_dict(), MSD_PARAMETERS, 'MSD parameters')
        parts = [arrays_from_node(trajectories[label], label) for label in sorted(trajectories)]
    except ValueError as exception:
        status = 'ERROR_INVALID_TRAJECTORY' if isinstance(exception, AnalysisError) else 'ERROR_INVALID_PARAMETERS'
        return exit_code(status, str(exception))
    try:
        return compute_msd_data(parts, params)
    except AnalysisError as exception:
        return exit_code('ERROR_INVALID_TRAJECTORY', str(exception))
    except ValueError as exception:
        return exit_code('ERROR_INVALID_PARAMETERS', str(exception))
