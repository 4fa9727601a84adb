"""Exit codes of the calcfunctions. They are part of the API: numbered, named and documented."""

from aiida.engine import ExitCode

#: name → (status, meaning). Messages returned by the functions add the specific problem.
EXIT_CODES = {
    'ERROR_INVALID_PARAMETERS': (300, 'The parameters Dict has unknown keys, wrong types or bad values.'),
    'ERROR_INVALID_TRAJECTORY': (
        310,
        'A trajectory cannot be analysed: NaN/inf positions, a changing cell, the species is absent, or '
        'frames too far apart to unwrap.',
    ),
    'ERROR_INCOMPATIBLE_INPUTS': (
        320,
        'The inputs do not belong together: different species, temperatures, cells, time grids or numbers of ions.',
    ),
    'ERROR_ANALYSIS_FAILED': (
        330,
        'The fit cannot be made: fewer frames than the fit window needs, a window outside the trajectory, '
        'or D not positive where a logarithm is needed.',
    ),
    'ERROR_MISSING_INPUT': (
        340,
        'A required input is absent: no trajectory, MSD or diffusion result given, or no temperature.',
    ),
    'ERROR_TRAINING_SET_TOO_SMALL': (
        350,
        'The training set has too few configurations to give every part of a split at least one.',
    ),
    # 360–369: sample_configurations
    'ERROR_INVALID_STRUCTURE': (
        360,
        'The structure cannot be sampled: not periodic along all three cell vectors, mixed-occupancy kinds, '
        'or atoms closer than 0.5 Å.',
    ),
    'ERROR_INVALID_SNAPSHOTS': (
        361,
        'The snapshots trajectory does not match the structure (number of atoms, species order) or has fewer '
        'frames than snapshot_count.',
    ),
    'ERROR_SAMPLING_FAILED': (
        362,
        'No strained and rattled copy kept every pair of atoms at least min_distance_A apart within max_tries draws.',
    ),
    # 370–379: collect_training_set (reference DFT labels)
    'ERROR_INVALID_DFT_OUTPUT': (
        370,
        'The DFT outputs of a configuration lack the energy or forces, hold NaN/inf, or have a shape that does not '
        'match its structure (the message names the configuration).',
    ),
    'ERROR_UNKNOWN_DFT_ENGINE': (371, 'The engine is not a known DFT engine (qe, vasp) or the functional is empty.'),
    'ERROR_NO_CONFIGURATION': (372, 'No configuration was given to collect.'),
}


def exit_code(name: str, detail: str) -> ExitCode:
    """The :class:`ExitCode` called ``name`` with ``detail`` as its message."""
    status, _ = EXIT_CODES[name]
    return ExitCode(status, detail, invalidates_cache=False)
