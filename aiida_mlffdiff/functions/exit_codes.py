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
}


def exit_code(name: str, detail: str) -> ExitCode:
    """The :class:`ExitCode` called ``name`` with ``detail`` as its message."""
    status, _ = EXIT_CODES[name]
    return ExitCode(status, detail, invalidates_cache=False)
