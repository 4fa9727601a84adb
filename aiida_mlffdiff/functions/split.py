"""``split_training_set``: one TrainingSet → train / validation / test TrainingSets by a seeded random permutation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict

from ..data.training_set import TrainingSet, same_configurations_problem
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


def train_size_check(value) -> str | None:
    """Check: a count ≥ 1 of train configurations, or a fraction in (0, 1] of the train part."""
    if isinstance(value, int):
        return None if value >= 1 else 'must be a count ≥ 1 or a fraction in (0, 1]'
    return None if math.isfinite(value) and 0 < value <= 1 else 'must be a count ≥ 1 or a fraction in (0, 1]'


SPLIT_PARAMETERS = {
    'fractions': Option(list, [0.8, 0.1, 0.1], 'fractions of [train, validation, test], summing to 1', three_fractions),
    'seed': Option(int, 0, 'seed of the random permutation', non_negative),
    'train_size': Option(
        (int, float, type(None)),
        None,
        'train on this many configurations of the train part (int) or this fraction of it (float in (0, 1]): the '
        'first ones of its seeded order, so a smaller size is a subset of a larger one; validation and test stay '
        'the same. None: the whole train part',
        train_size_check,
    ),
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


def train_count(n_train: int, train_size: int | float | None) -> int:
    """How many train configurations ``train_size`` means for a train part of ``n_train``.

    :raises TrainingSetTooSmallError: a count larger than the train part.
    """
    if train_size is None:
        return n_train
    if isinstance(train_size, int):
        if train_size > n_train:
            raise TrainingSetTooSmallError(
                f'train_size {train_size} is larger than the train part ({n_train} configurations).'
            )
        return train_size
    return max(1, math.floor(train_size * n_train + 0.5))


def split_indices(
    n_structures: int, fractions: Sequence[float], seed: int, train_size: int | float | None = None
) -> dict[str, list[int]]:
    """Indices of each part: a seeded permutation (numpy ``default_rng(seed)``) cut into train/validation/test.

    ``train_size`` keeps the first configurations of the train part in the permutation's order: nested (the
    smaller size a subset of the larger, same seed and fractions), validation and test unchanged. Each part's
    indices are returned sorted, so the configurations keep their original order inside a part.
    """
    counts = split_counts(n_structures, fractions)
    permutation = np.random.default_rng(seed).permutation(n_structures)
    bounds = np.cumsum((0, *counts))
    parts = {part: permutation[bounds[k] : bounds[k + 1]] for k, part in enumerate(PARTS)}
    parts['train'] = parts['train'][: train_count(counts[0], train_size)]
    return {part: sorted(int(i) for i in indices) for part, indices in parts.items()}


@calcfunction
def split_training_set(
    training_set: TrainingSet, parameters: Dict | None = None, reference_set: TrainingSet | None = None
) -> dict:
    """Split a training set into ``train``, ``validation`` and ``test`` TrainingSets (same functional and engine).

    :param parameters: optional, see ``SPLIT_PARAMETERS``: ``fractions`` [train, validation, test] summing to 1
        (default [0.8, 0.1, 0.1]), ``seed`` (default 0) and ``train_size`` (a nested subset of the train part).
        The same seed gives the same split.
    :param reference_set: optional, the same configurations in the same order labelled at a higher level (e.g. a
        converged k-point mesh): its test part is returned as ``reference_test``.
    :returns: ``train``, ``validation`` and ``test`` TrainingSets (each with the ``parent_indices`` it took), and
        ``reference_test`` with a reference set; or exit code 300 (bad parameters, a reference set of other
        configurations) or 350 (too few configurations for the parts or the train size).
    """
    try:
        params = validate_parameters(
            parameters.get_dict() if parameters is not None else None, SPLIT_PARAMETERS, 'split parameters'
        )
    except ValueError as exception:
        return exit_code('ERROR_INVALID_PARAMETERS', str(exception))
    if reference_set is not None:
        problem = same_configurations_problem(training_set, reference_set)
        if problem:
            return exit_code('ERROR_INVALID_PARAMETERS', f'the reference set {problem}')
    try:
        indices = split_indices(training_set.n_structures, params['fractions'], params['seed'], params['train_size'])
    except TrainingSetTooSmallError as exception:
        return exit_code('ERROR_TRAINING_SET_TOO_SMALL', str(exception))
    fractions = ', '.join(f'{f:g}' for f in params['fractions'])
    how = f'split with fractions [{fractions}] and seed {params["seed"]}'
    if params['train_size'] is not None:
        how += f', train size {params["train_size"]} (nested)'
    parts = [(part, training_set, part, part_indices) for part, part_indices in indices.items()]
    if reference_set is not None:
        parts.append(('reference_test', reference_set, 'test', indices['test']))
    outputs = {}
    for name, parent, part, part_indices in parts:
        source = (
            f'{part} part ({len(part_indices)} of {parent.n_structures} configurations) of training set '
            f'{parent.uuid}, {how}'
        )
        outputs[name] = parent.subset(part_indices, source=source)
    return outputs
