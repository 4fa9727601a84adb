"""``sample_configurations``: strained and rattled copies of a structure (plus MD snapshots) for DFT labelling.

Ranges (see ``SAMPLING_PARAMETERS``):

- strain: a symmetric tensor ε whose six independent components are drawn uniformly from
  [−max_strain, max_strain] (diagonal: normal strains, off-diagonal: shears); the cell becomes ``cell · (1 + ε)``
  and atoms keep their fractional coordinates. ``max_strain`` must be in [0, 0.2) (default 0.03 = 3 %).
- rattle: every Cartesian coordinate moves by a Gaussian of standard deviation ``rattle_A`` (Å, default 0.1).
  With ``rattle_max_A`` the standard deviation climbs evenly from ``rattle_A`` (first perturbed copy) to
  ``rattle_max_A`` (last): a ladder from near-equilibrium to the large displacements of hot MD, which a model
  must have seen to stay stable there. Each copy records its value as ``mlffdiff_rattle_A``.
- a copy with two atoms closer than ``min_distance_A`` (Å, default 1.5; minimum image) is redrawn (new strain
  and new rattle), at most ``max_tries`` times per configuration, then exit code 362.
- snapshots: ``snapshot_count`` frames of the optional ``snapshots`` TrajectoryData, evenly spaced from the first
  to the last frame; strained and rattled like the others only if ``rattle_snapshots`` is true.

One numpy ``default_rng(seed)`` draws everything in a fixed order: the same seed gives identical configurations.
"""

from __future__ import annotations

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, StructureData, TrajectoryData

from ..parameters import REQUIRED, Option, validate_parameters
from .exit_codes import exit_code

#: Atoms closer than this (Å) in the input structure mean a broken structure.
OVERLAP_A = 0.5
#: Upper bound (exclusive) of ``max_strain``.
MAX_STRAIN_LIMIT = 0.2
#: Output namespace and label format of the configurations.
NAMESPACE = 'configurations'
LABEL_FORMAT = 'c{:04d}'


def _at_least(minimum: float):
    def check(value) -> str | None:
        return None if value >= minimum else f'must be at least {minimum:g}'

    return check


def _strain_range(value) -> str | None:
    return None if 0 <= value < MAX_STRAIN_LIMIT else f'must be in [0, {MAX_STRAIN_LIMIT:g}) (a fraction, 0.03 = 3 %)'


SAMPLING_PARAMETERS = {
    'n_configurations': Option(
        int, REQUIRED, 'configurations made from the structure (the reference included)', _at_least(1)
    ),
    'max_strain': Option(float, 0.03, 'largest strain component (fraction), uniform in [-max, max]', _strain_range),
    'rattle_A': Option(float, 0.1, 'standard deviation of the Gaussian displacements (Å)', _at_least(0)),
    'rattle_max_A': Option(
        (float, type(None)), None, 'if set: standard deviations evenly from rattle_A to this (Å)', _at_least(0)
    ),
    'seed': Option(int, 0, 'seed of numpy default_rng', _at_least(0)),
    'include_reference': Option(bool, True, 'the first configuration is the input, unstrained and unrattled'),
    'min_distance_A': Option(float, 1.5, 'a copy with two atoms closer than this (Å) is redrawn', _at_least(0)),
    'max_tries': Option(int, 100, 'draws per configuration before giving up', _at_least(1)),
    'snapshot_count': Option(int, 0, 'frames taken evenly from the snapshots trajectory', _at_least(0)),
    'rattle_snapshots': Option(bool, False, 'strain and rattle the snapshot frames too'),
}


def sampling_parameters(raw: dict | None) -> dict:
    """The sampling parameters with their defaults, or ValueError naming the problem (also used at submission)."""
    params = validate_parameters(raw, SAMPLING_PARAMETERS, 'sampling parameters')
    if params['rattle_max_A'] is not None and params['rattle_max_A'] < params['rattle_A']:
        raise ValueError(
            f'invalid sampling parameters: rattle_max_A ({params["rattle_max_A"]:g} Å) must not be below rattle_A '
            f'({params["rattle_A"]:g} Å).'
        )
    return params


def minimum_distance(cell: np.ndarray, positions: np.ndarray) -> float:
    """Smallest minimum-image distance (Å) between two different atoms of a periodic cell (inf for one atom)."""
    from ase.geometry import get_distances

    if len(positions) < 2:
        return float('inf')
    _, distances = get_distances(positions, cell=cell, pbc=True)
    return float(distances[~np.eye(len(positions), dtype=bool)].min())


def random_strain(rng: np.random.Generator, max_strain: float) -> np.ndarray:
    """A symmetric 3×3 strain tensor with its six independent components uniform in [−max_strain, max_strain]."""
    upper = np.triu(rng.uniform(-max_strain, max_strain, size=(3, 3)))
    return upper + np.triu(upper, 1).T


def perturb(
    rng: np.random.Generator,
    cell: np.ndarray,
    positions: np.ndarray,
    max_strain: float,
    rattle_A: float,
    min_distance_A: float,
    max_tries: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A strained and rattled copy ``(cell, positions, strain)`` (Å) whose atoms stay ``min_distance_A`` apart.

    Cell rows are lattice vectors; both cell and positions are multiplied by ``1 + ε`` (fractional coordinates
    kept), then positions get Gaussian noise. Returns ``None`` when ``max_tries`` draws all fail.
    """
    for _ in range(max_tries):
        strain = random_strain(rng, max_strain)
        deformation = np.eye(3) + strain
        new_cell = cell @ deformation
        new_positions = positions @ deformation + rng.normal(0.0, rattle_A, size=positions.shape)
        if minimum_distance(new_cell, new_positions) >= min_distance_A:
            return new_cell, new_positions, strain
    return None


def snapshot_indices(n_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly from the first to the last of ``n_frames`` (both ends included)."""
    if count <= 0:
        return []
    return [int(i) for i in np.round(np.linspace(0, n_frames - 1, count)).astype(int)]


def _configuration(
    structure: StructureData, cell: np.ndarray, positions: np.ndarray, config_type: str, **extra
) -> StructureData:
    """A new StructureData: ``structure`` (kinds, attributes) with another cell and positions."""
    configuration = structure.clone()
    configuration.reset_cell(np.asarray(cell, dtype=float).tolist())
    configuration.reset_sites_positions(np.asarray(positions, dtype=float).tolist())
    attributes = configuration.base.attributes
    if config_type != 'reference' and 'mlffdiff_ewald_energy_eV' in attributes.all:
        attributes.delete('mlffdiff_ewald_energy_eV')  # belongs to the unperturbed shipped model only
    configuration.base.attributes.set('mlffdiff_config_type', config_type)
    for key, value in extra.items():
        configuration.base.attributes.set(f'mlffdiff_{key}', value)
    return configuration


def _structure_problem(structure: StructureData) -> str | None:
    """Why ``structure`` cannot be sampled, or None."""
    if not all(structure.pbc):
        return f'the structure must be periodic along all three cell vectors (pbc = {list(structure.pbc)}).'
    if not structure.sites:
        return 'the structure has no atoms.'
    if any(kind.is_alloy or kind.has_vacancies for kind in structure.kinds):
        return 'the structure has mixed-occupancy kinds (alloys or vacancies): an ordered cell is needed.'
    distance = minimum_distance(np.array(structure.cell), np.array([site.position for site in structure.sites]))
    if distance < OVERLAP_A:
        return f'two atoms of the structure are {distance:.3f} Å apart (less than {OVERLAP_A} Å): overlapping atoms.'
    return None


@calcfunction
def sample_configurations(structure: StructureData, parameters: Dict, snapshots: TrajectoryData | None = None) -> dict:
    """Strained and rattled copies of ``structure`` (and optional MD snapshots), one StructureData each.

    :param structure: a periodic, ordered structure (e.g. ``li6ps5cl_structure()``).
    :param parameters: see ``SAMPLING_PARAMETERS`` and the module docstring: ``n_configurations`` (≥ 1, required),
        ``max_strain`` (fraction in [0, 0.2), default 0.03), ``rattle_A`` (Å, ≥ 0, default 0.1), ``rattle_max_A`` (Å,
        default None: every copy uses rattle_A), ``seed`` (default 0), ``include_reference`` (default True),
        ``min_distance_A`` (Å, default 1.5), ``max_tries`` (default 100), ``snapshot_count`` (default 0) and
        ``rattle_snapshots`` (default False).
    :param snapshots: optional trajectory (e.g. AIMD or MLFF MD) with the structure's atoms in the same order;
        frames without a cell use the structure's cell.
    :returns: namespace ``configurations`` with labels ``c0000``, ``c0001``, …: first the ``n_configurations``
        made from the structure (``c0000`` is the input itself when ``include_reference``), then the snapshots.
        Each output keeps the structure's kinds and attributes and adds ``mlffdiff_config_type`` ('reference',
        'strain+rattle', 'snapshot' or 'snapshot+strain+rattle'), ``mlffdiff_strain`` (3×3, for strained ones)
        and ``mlffdiff_snapshot_frame`` (for snapshots). Exit codes: 300 (bad parameters), 340 (snapshot_count > 0
        without snapshots), 360 (bad structure), 361 (snapshots do not match), 362 (min_distance_A never met).
    """
    try:
        params = sampling_parameters(parameters.get_dict())
    except ValueError as exception:
        return exit_code('ERROR_INVALID_PARAMETERS', str(exception))
    problem = _structure_problem(structure)
    if problem:
        return exit_code('ERROR_INVALID_STRUCTURE', problem)

    cell = np.array(structure.cell, dtype=float)
    positions = np.array([site.position for site in structure.sites], dtype=float)
    symbols = [structure.get_kind(site.kind_name).symbol for site in structure.sites]
    frames = []
    if params['snapshot_count'] > 0:
        if snapshots is None:
            return exit_code('ERROR_MISSING_INPUT', 'snapshot_count > 0 needs a snapshots TrajectoryData input.')
        if list(snapshots.symbols) != symbols:
            return exit_code(
                'ERROR_INVALID_SNAPSHOTS',
                f'the snapshots have {snapshots.numsites} atoms ({"".join(sorted(set(snapshots.symbols)))}) that '
                f'differ from the structure ({len(symbols)} atoms) in number, species or order.',
            )
        if snapshots.numsteps < params['snapshot_count']:
            return exit_code(
                'ERROR_INVALID_SNAPSHOTS',
                f'snapshot_count is {params["snapshot_count"]} but the trajectory has {snapshots.numsteps} frames.',
            )
        frames = snapshot_indices(snapshots.numsteps, params['snapshot_count'])

    rng = np.random.default_rng(params['seed'])
    draw = {key: params[key] for key in ('max_strain', 'rattle_A', 'min_distance_A', 'max_tries')}
    configurations = []
    if params['include_reference']:
        configurations.append(_configuration(structure, cell, positions, 'reference'))
    offset = len(configurations)
    top = params['rattle_A'] if params['rattle_max_A'] is None else params['rattle_max_A']
    ladder = np.linspace(params['rattle_A'], top, max(params['n_configurations'] - offset, 1))
    while len(configurations) < params['n_configurations']:
        rattle = float(ladder[len(configurations) - offset])
        perturbed = perturb(rng, cell, positions, **{**draw, 'rattle_A': rattle})
        if perturbed is None:
            return exit_code(
                'ERROR_SAMPLING_FAILED',
                f'configuration {len(configurations)}: {params["max_tries"]} draws all put two atoms closer than '
                f'{params["min_distance_A"]} Å; lower rattle_A / max_strain or min_distance_A.',
            )
        new_cell, new_positions, strain = perturbed
        configurations.append(
            _configuration(structure, new_cell, new_positions, 'strain+rattle', strain=strain.tolist(), rattle_A=rattle)
        )
    for frame in frames:
        _, _, frame_cell, _, frame_positions, _ = snapshots.get_step_data(frame)
        frame_cell = cell if frame_cell is None else np.asarray(frame_cell, dtype=float)
        frame_positions = np.asarray(frame_positions, dtype=float)
        if not params['rattle_snapshots']:
            configurations.append(
                _configuration(structure, frame_cell, frame_positions, 'snapshot', snapshot_frame=frame)
            )
            continue
        perturbed = perturb(rng, frame_cell, frame_positions, **draw)
        if perturbed is None:
            return exit_code(
                'ERROR_SAMPLING_FAILED',
                f'snapshot frame {frame}: {params["max_tries"]} draws all put two atoms closer than '
                f'{params["min_distance_A"]} Å.',
            )
        new_cell, new_positions, strain = perturbed
        configurations.append(
            _configuration(
                structure,
                new_cell,
                new_positions,
                'snapshot+strain+rattle',
                strain=strain.tolist(),
                snapshot_frame=frame,
            )
        )
    return {NAMESPACE: {LABEL_FORMAT.format(i): configuration for i, configuration in enumerate(configurations)}}
