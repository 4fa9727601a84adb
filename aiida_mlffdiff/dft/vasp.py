"""VASP single points (PBE, HSE06) through aiida-vasp's ``vasp.vasp`` workchain: inputs, checks and labels.

The engine module of :mod:`aiida_mlffdiff.dft` for VASP (see that package for the interface). Protocols live in
``aiida_mlffdiff/protocols/reference_vasp.yaml``; every INCAR choice is commented there and in
``docs/reference_data_vasp.md``.

Units of the labels (:func:`labels_from_outputs`), from the ``misc`` output of aiida-vasp's ``vasp.vasp`` parser:

- energy: ``total_energies['energy_extrapolated']``, VASP's "energy(sigma->0)" (eV), the value ASE's VASP readers
  return as the potential energy (aiida-vasp corrects VASP 5's mislabelled final entry of vasprun.xml). It exceeds
  the force-consistent free energy ``F = E - T*S`` by ``T*S/2`` (0.6 meV for the 8-atom InAs test fixture, gap
  0.8 eV, SIGMA = 0.05 eV); ``energy_type='energy_free'`` selects ``F``.
- forces: eV/Å, last ionic step, in the order of the input structure's sites (aiida-vasp keeps the site order
  when it writes POSCAR/POTCAR).
- stress: VASP writes the stress tensor in kBar with the opposite sign to ASE (VASP: positive = compressive,
  i.e. a pressure). ``stress_eV_A3 = -stress_kBar * 0.1 * ase.units.GPa``, exactly as ASE's ``read_vasp_xml``.

Overrides (``get_builder(..., overrides=...)``) are merged recursively into the protocol's inputs, whose layout is::

    {'parameters': {'incar': {...}},   # INCAR tags, lower case (e.g. {'parameters': {'incar': {'ncore': 4}}})
     'kpoints_spacing': 0.3,           # Å⁻¹ (2π included), Γ-centred mesh n_i = max(1, ceil(|b_i| / spacing))
     'settings': {'parser_settings': {...}},
     'max_iterations': 3, 'clean_workdir': True}
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np
import yaml
from aiida import orm
from aiida.engine import ProcessBuilder
from aiida.plugins import WorkflowFactory
from ase.units import GPa

from ..protocols import ProtocolMixin, merge
from . import DftOutputError, Labels, check_common

__all__ = (
    'CALCJOB_PLUGIN',
    'ENERGY_TYPES',
    'ENGINE_INPUTS',
    'FUNCTIONALS',
    'OUTPUT_PORTS',
    'PROTOCOLS',
    'WORKCHAIN',
    'VaspProtocol',
    'build',
    'get_builder',
    'get_kpoints_mesh',
    'get_potential_mapping',
    'get_protocol',
    'get_protocol_inputs',
    'get_settings',
    'labels_from_outputs',
    'stress_kbar_to_ase',
    'validate',
)

#: Functionals with a protocol (lower case).
FUNCTIONALS: tuple[str, ...] = ('pbe', 'hse06')
#: Protocol names.
PROTOCOLS: tuple[str, ...] = ('fast', 'moderate', 'precise')
#: The sub-workchain run per configuration: aiida-vasp's ``VaspWorkChain`` (entry point ``vasp.vasp``).
WORKCHAIN = WorkflowFactory('vasp.vasp')
#: The CalcJob plugin the VASP code must be registered with.
CALCJOB_PLUGIN = 'vasp.vasp'
#: Output links of ``vasp.vasp`` carrying the labels: ``misc`` holds total energies, forces and stress.
OUTPUT_PORTS: tuple[str, ...] = ('misc',)
#: Engine-specific keyword arguments of :func:`get_builder` and :func:`validate`.
ENGINE_INPUTS: tuple[str, ...] = ('potential_family', 'potential_mapping')
#: Energy entries that aiida-vasp's parser can report in ``misc['total_energies']``.
ENERGY_TYPES: tuple[str, ...] = ('energy_extrapolated', 'energy_free', 'energy_no_entropy')

#: kBar → eV/Å³ with ASE's sign (ASE ``read_vasp_xml``: ``stress = -stress * 1e-1 * GPa``).
KBAR_TO_ASE_EV_A3 = -0.1 * GPa


class VaspProtocol(ProtocolMixin):
    """The VASP single-point protocols (``protocols/reference_vasp.yaml``), with INCAR sections per functional."""

    _protocol_file = 'reference_vasp.yaml'


def get_protocol() -> dict[str, Any]:
    """The parsed ``reference_vasp.yaml`` (a copy)."""
    return VaspProtocol._load_protocol_file()


#: Keys of the resolved settings of one run (the layout of the module docstring).
SETTING_KEYS: tuple[str, ...] = ('parameters', 'kpoints_spacing', 'settings', 'max_iterations', 'clean_workdir')


def _check_names(functional: str, protocol: str) -> tuple[str, str]:
    """Lower-case functional and protocol, or ``ValueError`` naming the known ones."""
    name = str(functional).strip().lower()
    if name not in FUNCTIONALS:
        raise ValueError(f'unknown functional {functional!r} for VASP; known: {", ".join(FUNCTIONALS)}.')
    if protocol not in PROTOCOLS:
        raise ValueError(f'unknown protocol {protocol!r} for VASP; known: {", ".join(PROTOCOLS)}.')
    return name, protocol


def get_protocol_inputs(functional: str, protocol: str = 'moderate', overrides: Mapping | None = None) -> dict:
    """The workchain inputs of a protocol as plain Python (see the module docstring), with ``overrides`` merged:
    ``default_inputs`` ← the protocol ← the functional's INCAR keys (common, then per protocol) ← ``overrides``.

    :raises ValueError: unknown functional or protocol.
    """
    functional, protocol = _check_names(functional, protocol)
    per_functional = get_protocol()['functionals'][functional]
    inputs = VaspProtocol.get_protocol_inputs(protocol)
    for part in (per_functional['common'], per_functional[protocol]):
        inputs = merge(inputs, {'parameters': {'incar': part or {}}})
    merged = merge(inputs, overrides)
    merged['parameters']['incar'] = {str(key).lower(): value for key, value in merged['parameters']['incar'].items()}
    return merged


#: The engine interface's name for :func:`get_protocol_inputs`.
get_settings = get_protocol_inputs


def get_levels() -> dict[str, dict]:
    """Reference-quality levels (``levels`` of reference_vasp.yaml): name → settings overrides and description."""
    return get_protocol()['levels']


def get_kpoints_mesh(structure: orm.StructureData, spacing: float | None) -> list[int]:
    """The Γ-centred mesh ``n_i = max(1, ceil(|b_i| / spacing))`` of ``structure`` (``b_i`` with 2π, Å⁻¹);
    ``spacing=None`` gives Γ only ([1, 1, 1])."""
    if spacing is None:
        return [1, 1, 1]
    if not spacing > 0:
        raise ValueError(f'the k-point spacing must be > 0 Å⁻¹, got {spacing!r}.')
    reciprocal = 2 * np.pi * np.linalg.inv(np.asarray(structure.cell, dtype=float)).T
    lengths = np.linalg.norm(reciprocal, axis=1)
    # A tiny tolerance keeps a length that is an exact multiple of the spacing from rounding up by float noise.
    return [max(1, math.ceil(length / spacing - 1e-9)) for length in lengths]


@functools.cache
def _default_mapping() -> dict[str, str]:
    """aiida-vasp's default element → POTCAR mapping (VASP's recommended PAW sets, e.g. Li → Li_sv, Na → Na_pv)."""
    text = resources.files('aiida_vasp.protocols').joinpath('vasp.yaml').read_text(encoding='utf-8')
    return dict(yaml.safe_load(text)['default_potential_mapping'])


def get_potential_mapping(structure: orm.StructureData, potential_mapping: Mapping | None = None) -> dict[str, str]:
    """Kind name → POTCAR name for every kind of ``structure``.

    A kind is looked up by its name, then by its element, first in ``potential_mapping`` and then (for elements
    only) in aiida-vasp's default mapping (``aiida_vasp/protocols/vasp.yaml``: Li → Li_sv, Na → Na_pv, P → P,
    S → S, Cl → Cl, ...).

    :raises ValueError: a kind that neither mapping covers.
    """
    user = dict(potential_mapping or {})
    defaults = _default_mapping()
    mapping, missing = {}, []
    for kind in structure.kinds:
        value = user.get(kind.name) or user.get(kind.symbol) or defaults.get(kind.symbol)
        if value:
            mapping[kind.name] = str(value)
        else:
            missing.append(kind.name if kind.name == kind.symbol else f'{kind.name} ({kind.symbol})')
    if missing:
        raise ValueError(
            f'no POTCAR mapping for {", ".join(missing)}: pass potential_mapping={{element: POTCAR name}}, '
            "e.g. {'Li': 'Li_sv'}."
        )
    return mapping


def _check_potentials(
    structure: orm.StructureData, potential_family: str | None, mapping: dict[str, str]
) -> str | None:
    """The problem with the POTCAR family for this structure (missing family, missing POTCARs), or ``None``."""
    from aiida.common.exceptions import MultipleObjectsError, NotExistent
    from aiida_vasp.data.potcar import PotcarData

    if not potential_family or not str(potential_family).strip():
        return (
            'no POTCAR family given: upload one with `aiida-vasp potcar uploadfamily` and pass '
            'potential_family=<its name>.'
        )
    family = str(potential_family)
    if PotcarData.get_potcar_group(family) is None:
        return f'the POTCAR family {family!r} does not exist; list them with `aiida-vasp potcar listfamilies`.'
    missing = []
    for kind_name, full_name in mapping.items():
        try:
            PotcarData.get_potcars_dict([kind_name], family_name=family, mapping={kind_name: full_name})
        except (NotExistent, MultipleObjectsError, ValueError, KeyError):
            missing.append(f'{full_name} (for {kind_name})')
    if missing:
        return f'the POTCAR family {family!r} lacks {", ".join(missing)}.'
    return None


def validate(
    structure: orm.StructureData,
    functional: str,
    protocol: str | None,
    *,
    potential_family: str | None = None,
    potential_mapping: Mapping | None = None,
) -> str | None:
    """The problem with these inputs in one sentence, or ``None``; launches nothing (queries the POTCAR family).

    Checks: known functional and protocol, a 3D-periodic cell without overlapping atoms, a POTCAR mapping for every
    kind, an existing family holding every mapped POTCAR.
    """
    problem = check_common(sys.modules[__name__], structure, functional, protocol)
    if problem:
        return problem
    try:
        mapping = get_potential_mapping(structure, potential_mapping)
    except ValueError as exception:
        return str(exception)
    return _check_potentials(structure, potential_family, mapping)


def get_builder(
    code: orm.AbstractCode,
    structure: orm.StructureData,
    functional: str,
    protocol: str = 'moderate',
    overrides: Mapping | None = None,
    options: Mapping | None = None,
    *,
    potential_family: str,
    potential_mapping: Mapping | None = None,
) -> ProcessBuilder:
    """A builder of aiida-vasp's ``vasp.vasp`` workchain for one single point (energy, forces, stress).

    :param code: the VASP ``InstalledCode`` (``default_calc_job_plugin`` ``vasp.vasp``).
    :param functional: ``'pbe'`` or ``'hse06'``.
    :param protocol: ``'fast'``, ``'moderate'`` or ``'precise'`` (see ``reference_vasp.yaml``).
    :param overrides: merged recursively into the protocol inputs (layout in the module docstring).
    :param options: merged into the CalcJob's ``metadata.options`` (resources, max_wallclock_seconds, ...).
    :param potential_family: name of an uploaded POTCAR family (``aiida-vasp potcar uploadfamily``).
    :param potential_mapping: element (or kind name) → POTCAR name; defaults to aiida-vasp's recommended sets.
    :raises ValueError: any problem found by :func:`validate`, or a code of another plugin.
    """
    settings = get_protocol_inputs(functional, protocol, overrides)  # unknown protocol or functional: ValueError
    # build validates the structure, the code and the POTCARs, once
    builder = build(
        code,
        structure,
        functional,
        settings,
        options,
        potential_family=potential_family,
        potential_mapping=potential_mapping,
    )
    builder.metadata.label = f'vasp-{str(functional).strip().lower()}-{protocol}'
    return builder


def build(
    code: orm.AbstractCode,
    structure: orm.StructureData,
    functional: str,
    settings: Mapping,
    options: Mapping | None = None,
    *,
    potential_family: str,
    potential_mapping: Mapping | None = None,
) -> ProcessBuilder:
    """A builder of ``vasp.vasp`` for one single point from resolved ``settings`` (:func:`get_settings`).

    :raises ValueError: a key that is not a setting, a code of another plugin, any problem of :func:`validate`.
    """
    if not isinstance(code, orm.AbstractCode):
        raise ValueError(f'expected the VASP code as an AbstractCode, got {type(code).__name__}.')
    plugin = code.default_calc_job_plugin
    if plugin not in (None, CALCJOB_PLUGIN):
        raise ValueError(f'the code {code.full_label!r} runs {plugin!r}, not {CALCJOB_PLUGIN!r}.')
    unknown = sorted(set(settings) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f'unknown setting keys {unknown}; known: {", ".join(SETTING_KEYS)}.')
    problem = validate(
        structure, functional, None, potential_family=potential_family, potential_mapping=potential_mapping
    )
    if problem:
        raise ValueError(problem)
    functional = str(functional).strip().lower()
    inputs = merge(settings)
    mesh = get_kpoints_mesh(structure, inputs['kpoints_spacing'])
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    kpoints.set_kpoints_mesh(mesh, offset=[0.0, 0.0, 0.0])

    builder = WORKCHAIN.get_builder()
    builder.code = code
    builder.structure = structure
    builder.parameters = orm.Dict(inputs['parameters'])
    builder.kpoints = kpoints
    builder.potential_family = orm.Str(str(potential_family))
    builder.potential_mapping = orm.Dict(get_potential_mapping(structure, potential_mapping))
    builder.settings = orm.Dict(inputs['settings'])
    builder.max_iterations = orm.Int(int(inputs['max_iterations']))
    builder.clean_workdir = orm.Bool(bool(inputs['clean_workdir']))
    builder.calc.metadata.options = merge(get_protocol()['options'], options)
    builder.metadata.label = f'vasp-{functional}'
    builder.metadata.description = f'VASP {functional.upper()} single point (k-mesh {"x".join(map(str, mesh))})'
    return builder


def stress_kbar_to_ase(stress_kbar: Any) -> np.ndarray:
    """VASP's stress tensor (kBar, positive = compressive) → ASE's (eV/Å³, positive = tensile), 3x3."""
    stress = np.asarray(stress_kbar, dtype=float)
    if stress.shape != (3, 3):
        raise DftOutputError(f'the VASP stress must be a 3x3 tensor, got shape {stress.shape}.')
    return stress * KBAR_TO_ASE_EV_A3


def labels_from_outputs(outputs: Mapping[str, orm.Data], *, energy_type: str = 'energy_extrapolated') -> Labels:
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign) from the ``misc`` output of ``vasp.vasp``.

    :param outputs: the nodes named in :data:`OUTPUT_PORTS` (``{'misc': Dict}``; a plain mapping also works).
    :param energy_type: ``'energy_extrapolated'`` (σ → 0, default, ASE's choice), ``'energy_free'`` or
        ``'energy_no_entropy'`` (requested by the protocols' parser settings).
    :raises DftOutputError: missing ``misc``, energy or forces; non-finite values; wrong shapes; a run that the
        parser reports as unfinished or not electronically converged.
    """
    if 'misc' not in outputs:
        raise DftOutputError(f'the VASP outputs lack "misc" (got {", ".join(sorted(outputs)) or "nothing"}).')
    misc = outputs['misc']
    misc = misc.get_dict() if isinstance(misc, orm.Dict) else dict(misc)
    run_status = misc.get('run_status') or {}
    if run_status.get('finished') is False:
        raise DftOutputError('the VASP run did not reach the end of execution: its labels are not usable.')
    if run_status.get('electronic_converged') is False:
        raise DftOutputError('the VASP run did not reach electronic convergence: its labels are not usable.')
    energies = misc.get('total_energies') or {}
    if energy_type not in energies:
        raise DftOutputError(
            f'the VASP outputs lack total_energies[{energy_type!r}] (have: {", ".join(energies) or "none"}); '
            f'request it with settings.parser_settings.energy_type.'
        )
    energy = float(energies[energy_type])
    if 'forces' not in misc or misc['forces'] is None:
        raise DftOutputError('the VASP outputs lack forces (misc["forces"]).')
    forces = np.asarray(misc['forces'], dtype=float)
    if forces.ndim != 2 or forces.shape[1] != 3 or len(forces) == 0:
        raise DftOutputError(f'the VASP forces must have shape (n_atoms, 3), got {forces.shape}.')
    stress = None
    if misc.get('stress') is not None:
        stress = stress_kbar_to_ase(misc['stress'])
    for name, value in (('energy', energy), ('forces', forces), ('stress', stress)):
        if value is not None and not np.all(np.isfinite(value)):
            raise DftOutputError(f'the VASP {name} is not finite.')
    return Labels(energy_eV=energy, forces_eV_A=forces, stress_eV_A3=stress)
