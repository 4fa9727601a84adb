"""``TrainingSet``: reference configurations (energy, forces, stress) for MLFF training, as one extxyz file."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from aiida.orm import Data
from aiida.orm.pydantic import OrmMetadataField
from ase import Atoms

from . import converters
from .converters import (
    REF_ENERGY_KEY,
    REF_FORCES_KEY,
    REF_STRESS_KEY,
    TrainingSetError,
    check_configuration,
    extxyz_text,
    labelled_atoms,
    read_extxyz,
)

__all__ = ('TrainingSet', 'TrainingSetError')


def _label(value: str, what: str, required: bool = False) -> str:
    """A lower-case, stripped label (functional, engine); refuse non-strings and (if required) empty ones."""
    if not isinstance(value, str):
        raise TrainingSetError(f'{what} must be a string, got {value!r}.')
    value = value.strip().lower()
    if required and not value:
        raise TrainingSetError(f'{what} must not be empty (e.g. "pbe", "hse06" or a label such as "lj-test").')
    return value


class TrainingSet(Data):
    """Reference configurations for MLFF training, stored as ONE extxyz file ``configurations.extxyz``.

    Per configuration: ``REF_energy`` (total energy, eV), ``REF_stress`` (eV/Å³, full 3x3 as 9 numbers, ASE's
    sign: positive = tensile), per-atom ``REF_forces`` (eV/Å) and ``config_type`` when given. Every float is
    written to full precision. Attributes (queryable): ``n_structures``, ``n_atoms_total``, ``species`` (sorted
    symbols), ``functional`` (lower case, e.g. 'pbe', 'hse06', 'lj-test'), ``engine`` (lower case, e.g. 'qe',
    'vasp' or ''), ``source`` (free text), ``has_stress`` (every configuration has a stress), ``sha256`` (of the
    file), ``stress_unit`` ('eV/A^3') and ``n_unique`` (distinct configurations: copies are allowed, but a test set
    holding copies of training configurations measures nothing, which TrainingWorkChain reports).
    """

    class AttributesModel(Data.AttributesModel):
        """``source`` is free text here (Data's own ``source`` is a dict): keeps ``to_model()`` valid."""

        source: str | None = OrmMetadataField(None, description='Free-text description of where the data come from')

    FILENAME = 'configurations.extxyz'
    STRESS_UNIT = 'eV/A^3'

    def __init__(
        self,
        configurations: Sequence[Atoms],
        *,
        functional: str,
        engine: str = '',
        source: str = '',
        **kwargs,
    ):
        """Build from labelled Atoms (see :meth:`from_atoms`); raises :class:`TrainingSetError` on bad input."""
        super().__init__(**kwargs)
        functional = _label(functional, 'functional', required=True)
        engine = _label(engine, 'engine')
        if not isinstance(source, str):
            raise TrainingSetError(f'source must be a string (free text), got {source!r}.')
        if isinstance(configurations, Atoms):
            configurations = [configurations]
        configurations = list(configurations)
        if not configurations:
            raise TrainingSetError('no configuration given: a training set needs at least one.')
        labelled = [labelled_atoms(atoms, check_configuration(atoms, i)) for i, atoms in enumerate(configurations)]
        content = extxyz_text(labelled).encode('utf-8')
        self.base.repository.put_object_from_bytes(content, self.FILENAME)
        attributes = {
            'n_structures': len(labelled),
            'n_atoms_total': sum(len(atoms) for atoms in labelled),
            'species': sorted({symbol for atoms in labelled for symbol in atoms.get_chemical_symbols()}),
            'functional': functional,
            'engine': engine,
            'source': source,
            'has_stress': all(REF_STRESS_KEY in atoms.info for atoms in labelled),
            'sha256': hashlib.sha256(content).hexdigest(),
            'stress_unit': self.STRESS_UNIT,
            'n_unique': len({configuration_key(atoms) for atoms in labelled}),
        }
        for key, value in attributes.items():
            self.base.attributes.set(key, value)

    @classmethod
    def from_atoms(
        cls, atoms_list: Iterable[Atoms], *, functional: str, engine: str = '', source: str = ''
    ) -> TrainingSet:
        """An unstored TrainingSet from ASE Atoms carrying energy (eV) and forces (eV/Å), optionally stress.

        Labels come from ``info['REF_energy']``, ``arrays['REF_forces']``, ``info['REF_stress']`` (6, 9 or 3x3
        numbers, eV/Å³) or, when absent, from the calculator results (e.g. a SinglePointCalculator; stress in
        Voigt-6 or 3x3). Every configuration must be periodic in 3D with a non-singular cell.

        :raises TrainingSetError: empty list, missing energy/forces, NaN/inf, wrong force shape, no 3D cell.
        """
        return cls(list(atoms_list), functional=functional, engine=engine, source=source)

    @classmethod
    def from_extxyz(
        cls,
        path: str | Path,
        *,
        functional: str,
        engine: str = '',
        source: str = '',
        energy_key: str = REF_ENERGY_KEY,
        forces_key: str = REF_FORCES_KEY,
        stress_key: str = REF_STRESS_KEY,
    ) -> TrainingSet:
        """An unstored TrainingSet from an extxyz file (labels under the given keys or as ASE calculator results)."""
        path = Path(path)
        if not path.is_file():
            raise TrainingSetError(f'{path} is not a file.')
        atoms_list = read_extxyz(path, energy_key, forces_key, stress_key)
        return cls(atoms_list, functional=functional, engine=engine, source=source or f'read from {path.name}')

    @classmethod
    def from_training_sets(
        cls, sets: Sequence[TrainingSet], *, functional: str | None = None, source: str = ''
    ) -> TrainingSet:
        """An unstored concatenation of training sets, in the given order.

        :param functional: required when the sets were computed with different functionals (mixing them is
            refused otherwise); the engine becomes the common engine, or the distinct engines joined with '+'.
        """
        sets = list(sets)
        if not sets:
            raise TrainingSetError('no training set given to concatenate.')
        functionals = sorted({ts.functional for ts in sets})
        if functional is None:
            if len(functionals) > 1:
                raise TrainingSetError(
                    f'the training sets were computed with different functionals ({", ".join(functionals)}): '
                    'refusing to mix them; pass functional=... explicitly if you mean it.'
                )
            functional = functionals[0]
        engines = sorted({ts.engine for ts in sets if ts.engine})
        if not source:
            names = ', '.join(str(ts.uuid) if ts.is_stored else '(unstored)' for ts in sets)
            source = f'concatenation of {len(sets)} training sets: {names}'
        atoms_list = [atoms for ts in sets for atoms in ts.get_atoms()]
        return cls(atoms_list, functional=functional, engine='+'.join(engines), source=source)

    def get_content(self) -> str:
        """The stored extxyz text."""
        return self.base.repository.get_object_content(self.FILENAME, mode='r')

    def get_atoms(self) -> list[Atoms]:
        """The configurations, each with a SinglePointCalculator (energy eV, forces eV/Å, stress eV/Å³ Voigt-6).

        The same labels are in ``info['REF_energy']``, ``arrays['REF_forces']`` and ``info['REF_stress']`` (9).
        """
        return read_extxyz(io.StringIO(self.get_content()))

    def subset(self, indices: Sequence[int], source: str = '') -> TrainingSet:
        """An unstored TrainingSet of the configurations at ``indices`` (in that order), same functional/engine.

        The subset records ``indices`` (attribute ``parent_indices``): which configurations of this set it holds.
        """
        indices = [int(i) for i in indices]
        if not indices:
            raise TrainingSetError('a subset needs at least one index.')
        bad = [i for i in indices if not 0 <= i < self.n_structures]
        if bad:
            raise TrainingSetError(f'indices {bad} are outside 0..{self.n_structures - 1}.')
        if len(set(indices)) != len(indices):
            raise TrainingSetError('repeated indices: a subset takes each configuration at most once.')
        atoms_list = self.get_atoms()
        if not source:
            parent = self.uuid if self.is_stored else '(unstored)'
            source = f'{len(indices)} of the {self.n_structures} configurations of training set {parent}'
        subset = type(self)(
            [atoms_list[i] for i in indices], functional=self.functional, engine=self.engine, source=source
        )
        subset.base.attributes.set('parent_indices', indices)
        if self.reference_level:
            subset.base.attributes.set('reference_level', self.reference_level)
        return subset

    def write_extxyz(
        self,
        path: str | Path,
        energy_key: str = REF_ENERGY_KEY,
        forces_key: str = REF_FORCES_KEY,
        stress_key: str = REF_STRESS_KEY,
    ) -> Path:
        """Write the configurations as extxyz with the given label keys (MACE, NequIP)."""
        return converters.write_extxyz(self.get_atoms(), path, energy_key, forces_key, stress_key)

    def write_deepmd(self, directory: str | Path, type_map: Sequence[str]) -> list[Path]:
        """Write the configurations as DeePMD npy systems (see :func:`converters.write_deepmd`)."""
        return converters.write_deepmd(self.get_atoms(), directory, type_map)

    def _attribute(self, key: str):
        return self.base.attributes.get(key)

    @property
    def n_structures(self) -> int:
        """Number of configurations."""
        return self._attribute('n_structures')

    @property
    def n_atoms_total(self) -> int:
        """Number of atoms summed over all configurations."""
        return self._attribute('n_atoms_total')

    @property
    def species(self) -> list[str]:
        """Chemical symbols present, sorted."""
        return self._attribute('species')

    @property
    def functional(self) -> str:
        """The exchange-correlation functional (or label) of the reference data, lower case."""
        return self._attribute('functional')

    @property
    def engine(self) -> str:
        """The code that computed the reference data (e.g. 'qe', 'vasp'), lower case, '' if unknown."""
        return self._attribute('engine')

    @property
    def source(self) -> str:  # type: ignore[override]
        """Free-text description of where the data come from (replaces Data's source dict)."""
        return self._attribute('source')

    @property
    def has_stress(self) -> bool:
        """Whether every configuration has a reference stress."""
        return self._attribute('has_stress')

    @property
    def sha256(self) -> str:
        """SHA-256 of the stored extxyz file."""
        return self._attribute('sha256')

    @property
    def reference_level(self) -> str:
        """The reference-quality level of the labels (e.g. 'gamma', 'converged'; '' when none was named)."""
        return self.base.attributes.get('reference_level', '')

    @property
    def parent_indices(self) -> list[int] | None:
        """Indices of the configurations in the set this one is a subset of (None unless made by :meth:`subset`)."""
        return self.base.attributes.get('parent_indices', None)

    @property
    def n_unique(self) -> int | None:
        """Number of distinct configurations (species, cell and positions to 1e-6 Å); None on older nodes."""
        return self.base.attributes.get('n_unique', None)

    @property
    def stress_unit(self) -> str:
        """Unit of ``REF_stress``: 'eV/A^3'."""
        return self._attribute('stress_unit')


def same_configurations_problem(first: TrainingSet, second: TrainingSet) -> str | None:
    """Why ``second`` does not hold the configurations of ``first`` in the same order (species, cell and positions
    within 1e-6 Å), or None."""
    if first.n_structures != second.n_structures:
        return f'has {second.n_structures} configurations, the training set {first.n_structures}.'
    mine = [configuration_key(atoms) for atoms in first.get_atoms()]
    theirs = [configuration_key(atoms) for atoms in second.get_atoms()]
    for index, (one, other) in enumerate(zip(mine, theirs, strict=True)):
        if one != other:
            return f'differs from the training set at configuration {index}: not the same configurations.'
    return None


def configuration_key(atoms: Atoms) -> tuple:
    """What identifies a configuration across label sets: species, cell and positions rounded to 1e-6 Å."""
    return (
        tuple(atoms.get_chemical_symbols()),
        tuple(np.round(atoms.cell.array, 6).ravel().tolist()),
        tuple(np.round(atoms.positions, 6).ravel().tolist()),
    )
