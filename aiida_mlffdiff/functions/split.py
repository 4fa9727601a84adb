"""``split_training_set``: one TrainingSet → train / validation / test TrainingSets by a seeded random permutation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict

from ..data.training_set import TrainingSet
from ..parameters import Option, validate_parameters
from .exit_codes import exit_code

PARTS = ('train', 'validation', 'test')


def three_fractions(value) -> str | None:
    """Check: three numbers in (0, 1) that sum to 1."""
    if len(value) != 3 or any(isinstance(f, bool) or not isinstance(f, int | float) for f in value):
        return 'must be three numbers [train, validation, test]'
    if not all(math.isfinite(f) and 0 < f < 1 for f in value):
        return 'must each be between 0 and 1 (every part needs configurations)'
    if abs(sum(value) - 1) > 1e-6:
        return f'must sum to 1 (they sum to {sum(value):g})'
    return None


def non_negative(value) -> str | None:
    """Check: an integer ≥ 0."""
    return None if value >= 0 else 'must not be negative'


SPLIT_PARAMETERS = {
    'fractions': Option(list, [0.8, 0.1, 0.1], 'fractions of [train, validation, test], summing to 1', three_fractions),
    'seed': Option(int, 0, 'seed of the random permutation', non_negative),
}

#: Fewest configurations a split can work with: one per part.
MIN_CONFIGURATIONS = len(PARTS)


class TrainingSetTooSmallError(ValueError):
    """Too few configurations to give every part of the split at least one."""


def split_counts(n_structures: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of (train, validation, test): validation and test rounded from their fractions but at least 1 each.

    :raises TrainingSetTooSmallError: fewer than 3 configurations, or no configuration left for training.
    """
    if n_structures < MIN_CONFIGURATIONS:
        raise TrainingSetTooSmallError(
            f'the training set has {n_structures} configuration(s): a train/validation/test split needs at least '
            f'{MIN_CONFIGURATIONS}.'
        )
    n_validation = max(1, math.floor(fractions[1] * n_structures + 0.5))
    n_test = max(1, math.floor(fractions[2] * n_structures + 0.5))
    n_train = n_structures - n_validation - n_test
    if n_train < 1:
        raise TrainingSetTooSmallError(
            f'{n_structures} configurations with fractions {list(fractions)} leave none for training '
            f'({n_validation} validation, {n_test} test).'
        )
    return n_train, n_validation, n_test


def split_indices(n_structures: int, fractions: Sequence[float], seed: int) -> dict[str, list[int]]:
    """Indices of each part: a seeded permutation (numpy ``default_rng(seed)``) cut into train/validation/test.

    Each part's indices are returned sorted, so the configurations keep their original order inside a part.
    """
    counts = split_counts(n_structures, fractions)
    permutation = np.random.default_rng(seed).permutation(n_structures)
    bounds = np.cumsum((0, *counts))
    return {part: sorted(int(i) for i in permutation[bounds[k] : bounds[k + 1]]) for k, part in enumerate(PARTS)}


@calcfunction
def split_training_set(training_set: TrainingSet, parameters: Dict | None = None) -> dict:
    """Split a training set into ``train``, ``validation`` and ``test`` TrainingSets (same functional and engine).

    :param parameters: optional, see ``SPLIT_PARAMETERS``: ``fractions`` [train, validation, test] summing to 1
        (default [0.8, 0.1, 0.1]) and ``seed`` (default 0). The same seed gives the same split.
    :returns: ``train``, ``validation`` and ``test`` TrainingSets; or exit code 300 (bad parameters) or 350
        (fewer than 3 configurations, or too few for every part to get one).
    """
    try:
        params = validate_parameters(
            parameters.get_dict() if parameters is not None else None, SPLIT_PARAMETERS, 'split parameters'
        )
    except ValueError as exception:
        return exit_code('ERROR_INVALID_PARAMETERS', str(exception))
    try:
        indices = split_indices(training_set.n_structures, params['fractions'], params['seed'])
    except TrainingSetTooSmallError as exception:
        return exit_code('ERROR_TRAINING_SET_TOO_SMALL', str(exception))
    fractions = ', '.join(f'{f:g}' for f in params['fractions'])
    outputs = {}
    for part, part_indices in indices.items():
        source = (
            f'{part} part ({len(part_indices)} of {training_set.n_structures} configurations) of training set '
            f'{training_set.uuid}, split with fractions [{fractions}] and seed {params["seed"]}'
        )
        outputs[part] = training_set.subset(part_indices, source=source)
    return outputs
