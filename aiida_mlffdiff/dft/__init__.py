"""DFT engines (Quantum ESPRESSO, VASP) behind one interface, used by ``ReferenceDataWorkChain``.

Every engine is a module of this package (``dft/qe.py``, ``dft/vasp.py``) that exposes the names below
(see :class:`DftEngine` for the exact signatures); :func:`get_dft_engine` imports it lazily by its short name.

``FUNCTIONALS``
    tuple of the functionals the engine has protocols for, at least ``('pbe', 'hse06')`` (lower case).
``PROTOCOLS``
    tuple of protocol names: ``('fast', 'moderate', 'precise')``.
``WORKCHAIN``
    the sub-workchain class run once per configuration (``PwBaseWorkChain`` or a subclass of it for QE; aiida-vasp's
    ``vasp.vasp`` workchain for VASP), or its entry-point name (``'quantumespresso.pw.base'``, ``'vasp.vasp'``).
``CALCJOB_PLUGIN``
    the entry point a code must have as ``default_calc_job_plugin`` (``'quantumespresso.pw'``, ``'vasp.vasp'``).
``OUTPUT_PORTS``
    tuple of the output link labels of ``WORKCHAIN`` that :func:`labels_from_outputs` needs (QE:
    ``('output_parameters', 'output_trajectory')``). ``collect_training_set`` receives exactly these nodes per
    configuration, so every label keeps its provenance link to the DFT CalcJob that created it.
``ENGINE_INPUTS``
    tuple of the names of the engine-specific keyword arguments of ``get_builder``/``validate``, which are also
    optional inputs of ``ReferenceDataWorkChain`` (QE: ``('pseudo_family',)``; VASP:
    ``('potential_family', 'potential_mapping')``). The workchain passes ``Str`` inputs as ``str`` and ``Dict``
    inputs as ``dict``.
``get_builder(code, structure, functional, protocol='moderate', overrides=None, options=None, **engine_kwargs)``
    a ``ProcessBuilder`` of ``WORKCHAIN`` for one single point (energy, forces, stress) of ``structure``.
    ``overrides`` (dict) is merged recursively into the protocol's inputs (engine-specific layout, documented in
    the engine module); ``options`` (dict) is merged into the CalcJob's ``metadata.options`` (``resources``,
    ``max_wallclock_seconds``, ``withmpi``, ``environment_variables``...). Raises ``ValueError`` on bad input.
``validate(structure, functional, protocol, **engine_kwargs) -> str | None``
    the problem with these inputs in one sentence, or ``None``: unknown functional or protocol (``None``: not
    checked, for resolved settings), a non-periodic
    cell, overlapping atoms (:data:`MIN_DISTANCE_A`), elements missing from the pseudopotential family. Must not
    launch anything; may query the database (families). Use :func:`check_common` for the engine-independent
    checks.
``get_levels() -> dict[str, dict]``
    the reference-quality levels of the engine's protocol file (``gamma``, ``converged``): name → the settings it
    overrides (and a ``description``); see :func:`level_overrides`.
``labels_from_outputs(outputs: Mapping[str, orm.Data]) -> Labels``
    the labels in the units of ``TrainingSet`` from the nodes named in ``OUTPUT_PORTS`` (keys = those names):
    total energy (eV), forces (eV/Å, shape (n_atoms, 3), in the order of the input structure's sites) and the
    stress (eV/Å³, 3x3, ASE's sign convention: ``stress = (1/V) dE/dε``, positive = tensile, i.e. the cell wants
    to shrink) or ``None`` if the engine did not compute it. Raises :class:`DftOutputError` if a label is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any, NamedTuple, Protocol

import numpy as np
from aiida import orm

from ..drivers.md_core import MIN_DISTANCE_A as _MIN_DISTANCE_A

__all__ = (
    'ENGINES',
    'MIN_DISTANCE_A',
    'DftEngine',
    'DftEngineError',
    'DftOutputError',
    'Labels',
    'check_common',
    'check_geometry',
    'get_dft_engine',
    'level_overrides',
)

#: Short name → module of every known engine (imported lazily: VASP's plugin is heavy, QE may be absent).
ENGINES: dict[str, str] = {'qe': 'aiida_mlffdiff.dft.qe', 'vasp': 'aiida_mlffdiff.dft.vasp'}
#: Two atoms closer than this (Å, minimum image) are refused as overlapping: the MD core's constant, one for all.
MIN_DISTANCE_A = _MIN_DISTANCE_A


class DftEngineError(ValueError):
    """An unknown engine name, or an engine module that cannot be imported."""


class DftOutputError(ValueError):
    """The outputs of a DFT run lack a label (energy, forces) or hold one of the wrong shape or unit."""


class Labels(NamedTuple):
    """DFT labels of one configuration in ``TrainingSet`` units."""

    #: Total energy (eV).
    energy_eV: float
    #: Forces (eV/Å), shape (n_atoms, 3), in the order of the structure's sites.
    forces_eV_A: np.ndarray
    #: Stress (eV/Å³), 3x3, ASE's sign (positive = tensile); ``None`` if not computed.
    stress_eV_A3: np.ndarray | None


class DftEngine(Protocol):
    """The names an engine module exposes (a structural type: modules are checked by duck typing)."""

    FUNCTIONALS: tuple[str, ...]
    PROTOCOLS: tuple[str, ...]
    WORKCHAIN: Any
    CALCJOB_PLUGIN: str
    OUTPUT_PORTS: tuple[str, ...]
    ENGINE_INPUTS: tuple[str, ...]

    def get_builder(
        self,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        functional: str,
        protocol: str = 'moderate',
        overrides: dict | None = None,
        options: dict | None = None,
        **engine_kwargs: Any,
    ) -> Any:
        """A ProcessBuilder of ``WORKCHAIN`` for one single point."""

    def get_settings(self, functional: str, protocol: str = 'moderate', overrides: dict | None = None) -> dict:
        """The resolved settings of one run (JSON values)."""

    def build(
        self,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        functional: str,
        settings: Mapping,
        options: dict | None = None,
        **engine_kwargs: Any,
    ) -> Any:
        """A ProcessBuilder of ``WORKCHAIN`` for one single point from resolved settings."""

    def validate(
        self, structure: orm.StructureData, functional: str, protocol: str | None, **engine_kwargs: Any
    ) -> str | None:
        """The problem with these inputs, or ``None``."""

    def get_levels(self) -> dict[str, dict]:
        """Reference-quality levels: name → settings overrides (and ``description``)."""

    def labels_from_outputs(self, outputs: Mapping[str, orm.Data]) -> Labels:
        """Energy (eV), forces (eV/Å), stress (eV/Å³) from the output nodes named in ``OUTPUT_PORTS``."""


def get_dft_engine(name: str) -> ModuleType:
    """The engine module called ``name`` ('qe' or 'vasp'), imported on first use.

    :raises DftEngineError: an unknown name (the message lists the known ones) or a module that fails to import.
    """
    key = str(name).strip().lower()
    if key not in ENGINES:
        raise DftEngineError(f'unknown DFT engine {name!r}; known engines: {", ".join(ENGINES)}.')
    try:
        return importlib.import_module(ENGINES[key])
    except ImportError as exception:
        raise DftEngineError(f'the DFT engine {key!r} cannot be imported: {exception}') from exception


def level_overrides(engine: ModuleType, level: str | Mapping) -> dict:
    """The settings a reference-quality level changes: a level of ``engine``'s protocol file by name, or a dict of
    settings given by the user (a level of their own, e.g. ``{'ecutwfc': 20.0}``).

    :raises DftEngineError: an unknown level name (the message lists the known ones).
    """
    if isinstance(level, Mapping):
        return {key: value for key, value in level.items() if key != 'description'}
    levels = engine.get_levels()
    if level not in levels:
        name = engine.__name__.rsplit('.', 1)[-1]
        raise DftEngineError(
            f'unknown reference level {level!r} for the {name} engine; known: {", ".join(levels)} (or give the '
            'settings of your own level as a dict).'
        )
    return {key: value for key, value in levels[level].items() if key != 'description'}


def check_geometry(structure: orm.StructureData, min_distance: float = MIN_DISTANCE_A) -> str | None:
    """The problem with the cell or the atoms of ``structure`` (not periodic in 3D, singular cell, no atom,
    two atoms closer than ``min_distance`` Å under periodic boundary conditions), or ``None``."""
    if not isinstance(structure, orm.StructureData):
        return f'expected a StructureData, got {type(structure).__name__}.'
    if not all(structure.pbc):
        return (
            f'the structure is not periodic in 3D (pbc={tuple(structure.pbc)}): '
            'a plane-wave single point needs a 3D cell.'
        )
    if not structure.sites:
        return 'the structure has no atoms.'
    cell = np.asarray(structure.cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    if not np.isfinite(volume) or volume < 1e-6:
        return f'the cell is singular (volume {volume:.3g} Å³).'
    atoms = structure.get_ase()
    if len(atoms) > 1:
        distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e6
        i, j = np.unravel_index(np.argmin(distances), distances.shape)
        if distances[i, j] < min_distance:
            return (
                f'atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) overlap: {distances[i, j]:.3f} Å apart '
                f'(< {min_distance} Å).'
            )
    # An atom overlapping its own periodic image (a tiny cell) is caught by the shortest lattice vector.
    shortest = min(np.linalg.norm(cell, axis=1))
    if shortest < min_distance:
        return f'a lattice vector is {shortest:.3f} Å long (< {min_distance} Å): atoms overlap their images.'
    return None


def check_common(engine: ModuleType, structure: orm.StructureData, functional: str, protocol: str | None) -> str | None:
    """The engine-independent problems: unknown functional or protocol (None: not checked) for ``engine``, then
    :func:`check_geometry`."""
    name = getattr(engine, '__name__', 'engine').rsplit('.', 1)[-1]
    if str(functional).lower() not in engine.FUNCTIONALS:
        return f'unknown functional {functional!r} for engine {name!r}; known: {", ".join(engine.FUNCTIONALS)}.'
    if protocol is not None and protocol not in engine.PROTOCOLS:
        return f'unknown protocol {protocol!r} for engine {name!r}; known: {", ".join(engine.PROTOCOLS)}.'
    return check_geometry(structure)
