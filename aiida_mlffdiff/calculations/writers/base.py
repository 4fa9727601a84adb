"""What every architecture's input writer provides to :class:`~aiida_mlffdiff.calculations.train.TrainCalculation`.

A writer knows one engine: its hyper-parameter schema (validated at submission), the files and command lines of a
training job, the files to retrieve and the name of the deployable model file. It works on plain directories and
``ase.Atoms`` (no AiiDA), so that the same writer serves the CalcJob, the tests and a user who wants to run the engine
by hand. Nothing it writes refers to an absolute path: the job folder must work on any computer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ase import Atoms
from ase.data import atomic_numbers

from aiida_mlffdiff.parameters import Option, validate_parameters

#: Hyper-parameter every architecture accepts under this name (a restart handler lowers it after a NaN loss).
LEARNING_RATE_KEY = 'learning_rate'


def positive_int(value) -> str | None:
    """Check: an integer ≥ 1."""
    return None if value >= 1 else 'must be at least 1'


def non_negative(value) -> str | None:
    """Check: a number ≥ 0."""
    return None if value >= 0 else 'must not be negative'


def positive_number(value) -> str | None:
    """Check: a number > 0."""
    return None if value > 0 else 'must be positive'


def int_list(value) -> str | None:
    """Check: a non-empty list of positive integers."""
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return 'must be a non-empty list of positive integers'
    return None


def symbol_list(value) -> str | None:
    """Check: a non-empty list of distinct chemical symbols."""
    if not value or not all(isinstance(v, str) and v in atomic_numbers and v != 'X' for v in value):
        return 'must be a non-empty list of chemical symbols'
    if len(set(value)) != len(value):
        return 'must not repeat a symbol'
    return None


def dtype_check(value) -> str | None:
    """Check: 'float32' or 'float64'."""
    return None if value in ('float32', 'float64') else 'must be float32 or float64'


@dataclass(frozen=True)
class Command:
    """One program run of the training job; the job runs its commands one after the other.

    :param code: the input port whose code runs it: ``code`` (the training executable) or ``compile_code``.
    :param arguments: command-line arguments after the executable.
    """

    code: Literal['code', 'compile_code']
    arguments: tuple[str, ...]
    stdout: str
    stderr: str


@dataclass(frozen=True)
class JobFiles:
    """What a writer produced: the commands to run, in order, and the files to retrieve (names or globs)."""

    commands: tuple[Command, ...]
    retrieve: tuple[str, ...]
    #: Input files written, relative to the job folder (for the record and the tests).
    written: tuple[str, ...] = field(default_factory=tuple)


class TrainingWriter(ABC):
    """Writes the inputs of one MLFF engine's training job (subclass per architecture)."""

    #: Architecture name, as given in the CalcJob's ``architecture`` input and stored on the model.
    architecture: ClassVar[str]
    #: Engine environment (key of :data:`aiida_mlffdiff.environments.ENGINES`) that trains and later loads the model.
    engine: ClassVar[str]
    #: Name of the deployable model file the job leaves in its working directory.
    model_filename: ClassVar[str]
    #: Hyper-parameters: name → :class:`Option` (types, default, help with units, check).
    schema: ClassVar[dict[str, Option]]
    #: Name of the option that lists the model's species explicitly (``None`` in it: the training-set species).
    species_option: ClassVar[str] = 'species'
    #: Whether the job needs the ``compile_code`` input (a second executable).
    needs_compile_code: ClassVar[bool] = False
    #: What the executable(s) are, for messages: e.g. 'mace_run_train'.
    executables: ClassVar[str] = ''

    def validate(
        self,
        parameters: Mapping[str, Any] | None,
        training_species: Sequence[str] = (),
        validation_species: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The hyper-parameters completed with defaults; ``ValueError`` naming every problem.

        Checks unknown keys, types and values (:func:`validate_parameters`), cross-option constraints
        (:meth:`check`), and that the model's species cover every species of the training and validation sets.
        """
        values = validate_parameters(parameters, self.schema, what=f'{self.architecture} parameters')
        problems = self.check(values)
        if training_species:
            species = self.model_species(values, training_species)
            missing = sorted((set(training_species) | set(validation_species)) - set(species))
            if missing:
                problems.append(
                    f'{self.species_option} {species} does not cover {", ".join(missing)}, present in the '
                    'training or validation set'
                )
        if problems:
            raise ValueError(f'invalid {self.architecture} parameters: ' + '; '.join(problems) + '.')
        return values

    def check(self, values: dict[str, Any]) -> list[str]:
        """Cross-option problems of validated ``values`` (override; default: none)."""
        return []

    def min_training_configurations(self, values: Mapping[str, Any]) -> tuple[int, str]:
        """The fewest training configurations validated ``values`` can train on, and why (override; default 1)."""
        return 1, ''

    def training_set_problem(self, values: Mapping[str, Any], n_training: int) -> str | None:
        """Why ``n_training`` configurations are too few for validated ``values``, or None."""
        needed, why = self.min_training_configurations(values)
        if n_training >= needed:
            return None
        return f'{n_training} training configuration(s) are too few for {self.architecture} with {why}'

    def model_species(self, values: Mapping[str, Any], training_species: Sequence[str]) -> list[str]:
        """The species of the model: the explicit option if given, else the training-set species (sorted)."""
        explicit = values.get(self.species_option)
        return list(explicit) if explicit else sorted(training_species)

    def cutoff_A(self, values: Mapping[str, Any]) -> float:
        """Radial cutoff of the model (Å)."""
        return float(values['cutoff_A'])

    def target(self, values: Mapping[str, Any]) -> str | None:
        """Deployment target recorded on the model (nequip-compile's ``--target``), ``None`` if not applicable."""
        return None

    def defaults(self) -> dict[str, Any]:
        """Every hyper-parameter with its default value."""
        return validate_parameters({}, self.schema)

    def describe(self) -> str:
        """The schema as text: one line per option with its type, default and help (units included)."""
        lines = []
        for key, option in self.schema.items():
            types = option.types if isinstance(option.types, tuple) else (option.types,)
            names = '|'.join('None' if t is type(None) else t.__name__ for t in types)
            lines.append(f'{key} ({names}, default {option.default!r}): {option.help}')
        return '\n'.join(lines)

    @abstractmethod
    def write(
        self,
        directory: Path,
        training: Sequence[Atoms],
        validation: Sequence[Atoms],
        values: Mapping[str, Any],
        *,
        species: Sequence[str],
        seed: int,
        use_stress: bool,
    ) -> JobFiles:
        """Write the job's input files into ``directory`` and return its commands and retrieve list.

        :param training: labelled configurations (energy eV, forces eV/Å, stress eV/Å³).
        :param validation: labelled configurations for validation.
        :param values: hyper-parameters as returned by :meth:`validate`.
        :param species: the model's species (:meth:`model_species`).
        :param seed: random seed of the training run.
        :param use_stress: train on the stress (both sets have one and its weight is positive).
        """

    def uses_stress(self, values: Mapping[str, Any], has_stress: bool) -> bool:
        """Whether to train on the stress: the data have it and its weight is positive."""
        return bool(has_stress) and float(values.get('stress_weight', 0.0)) > 0


def common_options(
    *,
    cutoff_A: float,
    learning_rate: float,
    batch_size: int,
    energy_weight: float,
    forces_weight: float,
    stress_weight: float,
    dtype: str,
) -> dict[str, Option]:
    """Options every architecture shares, with that architecture's defaults."""
    return {
        'cutoff_A': Option(float, cutoff_A, 'radial cutoff of the model (Å)', positive_number),
        LEARNING_RATE_KEY: Option(float, learning_rate, 'initial learning rate of the optimiser', positive_number),
        'batch_size': Option(int, batch_size, 'configurations per training batch', positive_int),
        'energy_weight': Option(float, energy_weight, 'weight of the energy (per atom) term in the loss', non_negative),
        'forces_weight': Option(float, forces_weight, 'weight of the force term in the loss', non_negative),
        'stress_weight': Option(
            float, stress_weight, 'weight of the stress term in the loss (0: no stress training)', non_negative
        ),
        'dtype': Option(str, dtype, 'floating-point precision of the model: float32 or float64', dtype_check),
    }
