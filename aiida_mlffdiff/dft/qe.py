"""Quantum ESPRESSO engine: PBE and HSE06 single points through aiida-quantumespresso's ``PwBaseWorkChain``.

The sub-workchain is :class:`MlffdiffPwBaseWorkChain` (entry point ``mlffdiff.pw.base``): aiida-quantumespresso's
``PwBaseWorkChain`` with all its restart handlers, plus two handlers for hybrid functionals (an exact-exchange loop
that did not converge, a negative ``dexx``). Settings per protocol and functional are in
``protocols/reference_qe.yaml``; see :func:`get_builder` for what ``overrides`` and ``options`` may change.

Units: pw.x reports the total energy (parsed to eV), forces (parsed to eV/Å) and the stress (parsed to GPa, with
QE's sign: positive = compressive). :func:`labels_from_outputs` converts to ``TrainingSet`` units and ASE's sign
(``stress = (1/V) dE/dε``, positive = tensile): ``stress_eV_A3 = -stress_GPa / 160.21766208``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import ProcessHandlerReport, process_handler
from aiida_quantumespresso.calculations.pw import PwCalculation
from aiida_quantumespresso.common.types import RestartType
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from ..protocols import ProtocolMixin, merge
from . import DftOutputError, Labels, check_common

__all__ = (
    'CALCJOB_PLUGIN',
    'ENGINE_INPUTS',
    'FUNCTIONALS',
    'OUTPUT_PORTS',
    'PROTOCOLS',
    'WORKCHAIN',
    'MlffdiffPwBaseWorkChain',
    'QeProtocol',
    'build',
    'get_builder',
    'get_settings',
    'kpoints_mesh',
    'labels_from_outputs',
    'validate',
)

FUNCTIONALS = ('pbe', 'hse06')
PROTOCOLS = ('fast', 'moderate', 'precise')
CALCJOB_PLUGIN = 'quantumespresso.pw'
OUTPUT_PORTS = ('output_parameters', 'output_trajectory')
ENGINE_INPUTS = ('pseudo_family',)
#: 1 eV/Å³ in GPa.
GPA_PER_EV_A3 = 160.21766208
#: Largest ``electron_maxstep`` the EXX handler raises to (pw.x 6.x bounds the outer EXX loop by it too).
MAX_ELECTRON_MAXSTEP = 400
#: Keys of a protocol entry that are not pw.x namelists.
SETTING_KEYS = (
    'description',
    'ecutwfc',
    'dual',
    'conv_thr_per_atom',
    'kpoints_spacing',
    'kpoints_mesh',
    'ecutfock_factor',
    'max_iterations',
    'max_wallclock_seconds',
    'num_threads',
    'clean_workdir',
    'extra_bands_fraction',
    'settings',
    'parameters',
)


class MlffdiffPwBaseWorkChain(PwBaseWorkChain):
    """``PwBaseWorkChain`` plus handlers for hybrid functionals; every handler of the parent stays active."""

    def _stdout(self, calculation) -> str:
        """The retrieved pw.x stdout of ``calculation`` ('' if absent)."""
        try:
            retrieved = calculation.outputs.retrieved
            return retrieved.base.repository.get_object_content(calculation.get_option('output_filename'))
        except Exception:
            return ''

    @process_handler(priority=600, exit_codes=[PwCalculation.exit_codes.ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED])
    def handle_exx_not_converged(self, calculation):
        """The outer exact-exchange loop did not converge: restart from scratch with twice the ``electron_maxstep``.

        pw.x 6.x bounds the EXX loop by ``electron_maxstep`` (7.x also has ``exx_maxstep``, raised too when set).
        Any other SCF failure falls through to the parent's handler (lower ``mixing_beta``, full restart).
        """
        if 'EXX convergence NOT achieved' not in self._stdout(calculation):
            return None
        electrons = self.ctx.inputs.parameters.setdefault('ELECTRONS', {})
        old = int(electrons.get('electron_maxstep', 100))
        if old >= MAX_ELECTRON_MAXSTEP:
            self.report_error_handled(calculation, f'EXX loop not converged with electron_maxstep {old}: giving up')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE)
        electrons['electron_maxstep'] = min(2 * old, MAX_ELECTRON_MAXSTEP)
        if 'exx_maxstep' in electrons:
            electrons['exx_maxstep'] = 2 * int(electrons['exx_maxstep'])
        self.set_restart_type(RestartType.FROM_SCRATCH)
        self.report_error_handled(
            calculation,
            f'EXX loop not converged: electron_maxstep {old} → {electrons["electron_maxstep"]}, from scratch',
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=600, exit_codes=[PwCalculation.exit_codes.ERROR_DEXX_IS_NEGATIVE])
    def handle_negative_dexx(self, calculation):
        """``dexx`` came out negative (ecutfock too low): restart from scratch with ``ecutfock = ecutrho``."""
        system = self.ctx.inputs.parameters.setdefault('SYSTEM', {})
        ecutrho = system.get('ecutrho', 4 * system['ecutwfc'])
        old = system.get('ecutfock', ecutrho)
        if old >= ecutrho:
            self.report_error_handled(calculation, f'negative dexx with ecutfock {old} = ecutrho: giving up')
            return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE)
        system['ecutfock'] = ecutrho
        self.set_restart_type(RestartType.FROM_SCRATCH)
        self.report_error_handled(calculation, f'negative dexx: ecutfock {old} → {ecutrho} Ry, from scratch')
        return ProcessHandlerReport(True)


WORKCHAIN = MlffdiffPwBaseWorkChain


class QeProtocol(ProtocolMixin):
    """The QE single-point protocols (``protocols/reference_qe.yaml``), with a section per functional."""

    _protocol_file = 'reference_qe.yaml'


def load_protocols() -> dict:
    """The content of ``protocols/reference_qe.yaml``."""
    return QeProtocol._load_protocol_file()


def get_levels() -> dict[str, dict]:
    """Reference-quality levels (``levels`` of reference_qe.yaml): name → settings overrides and description."""
    return load_protocols()['levels']


def default_pseudo_family() -> str:
    """The label of the family installed by ``aiida-mlffdiff setup`` (used when none is given)."""
    return load_protocols()['default_pseudo_family']


def check_settings(settings: Mapping) -> None:
    """``ValueError`` naming the keys of ``settings`` that are not settings of a run (``SETTING_KEYS``)."""
    unknown = sorted(set(settings) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f'unknown setting keys {unknown}; known: {", ".join(SETTING_KEYS)}.')


def get_settings(functional: str, protocol: str = 'moderate', overrides: Mapping | None = None) -> dict:
    """The resolved settings (protocol ← functional ← overrides) of one run; see ``reference_qe.yaml`` for the keys.

    :raises ValueError: unknown functional, protocol or override key.
    """
    functionals = load_protocols()['functionals']
    functional = str(functional).lower()
    if functional not in functionals:
        raise ValueError(f'unknown functional {functional!r}; known: {", ".join(functionals)}.')
    check_settings(overrides or {})
    settings = merge(QeProtocol.get_protocol_inputs(protocol), functionals[functional])
    settings.pop('description', None)
    return merge(settings, overrides)


def kpoints_mesh(cell: np.ndarray, spacing: float | None) -> list[int]:
    """Monkhorst-Pack mesh for ``cell`` (Å): ``n_i = max(1, ceil(|b_i| / spacing))``, b with the 2π (1/Å).

    ``spacing=None`` gives Γ only ([1, 1, 1]).
    """
    if spacing is None:
        return [1, 1, 1]
    if spacing <= 0:
        raise ValueError(f'kpoints_spacing must be positive (1/Å), got {spacing}.')
    reciprocal = 2 * np.pi * np.linalg.inv(np.asarray(cell, dtype=float)).T
    return [max(1, math.ceil(np.linalg.norm(b) / spacing - 1e-8)) for b in reciprocal]


def load_pseudo_family(label: str):
    """The aiida-pseudo family ``label``; raises ``ValueError`` with a hint when it is missing or not a family."""
    from aiida.common.exceptions import NotExistent
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    try:
        family = orm.Group.collection.get(label=label)
    except NotExistent as exception:
        raise ValueError(
            f'no pseudopotential family {label!r}: run `aiida-mlffdiff setup` (installs '
            f'{default_pseudo_family()!r} offline) or `aiida-pseudo install sssp|pseudo-dojo`, then pass its label.'
        ) from exception
    if not isinstance(family, PseudoPotentialFamily):
        raise ValueError(f'the group {label!r} is not an aiida-pseudo pseudopotential family.')
    return family


_PSEUDO_TYPES: dict[str, str] = {}


def pseudo_type(pseudo) -> str:
    """The ``pseudo_type`` of a UPF node ('NC', 'SL', 'US', 'PAW', or '' if unknown), read from its header."""
    if pseudo.uuid not in _PSEUDO_TYPES:
        try:
            content = pseudo.get_content()
        except Exception:
            content = ''
        match = re.search(r'pseudo_type\s*=\s*"\s*(\w+)', content) or re.search(r'^\s*(NC|US|PAW)\s', content, re.M)
        _PSEUDO_TYPES[pseudo.uuid] = match.group(1).upper() if match else ''
    return _PSEUDO_TYPES[pseudo.uuid]


def validate(
    structure: orm.StructureData,
    functional: str,
    protocol: str | None = 'moderate',
    *,
    pseudo_family: str | None = None,
    **engine_kwargs: Any,
) -> str | None:
    """The problem with a QE single point of ``structure``, or ``None`` (see :mod:`aiida_mlffdiff.dft`; ``protocol``
    None: resolved settings, no protocol name to check)."""
    import sys

    if engine_kwargs:
        return f'unexpected inputs for engine qe: {", ".join(sorted(engine_kwargs))} (qe takes pseudo_family).'
    problem = check_common(sys.modules[__name__], structure, functional, protocol)
    if problem:
        return problem
    label = pseudo_family or default_pseudo_family()
    try:
        family = load_pseudo_family(label)
    except ValueError as exception:
        return str(exception)
    missing = sorted(set(structure.get_symbols_set()) - set(family.elements))
    if missing:
        return f'the pseudopotential family {label!r} has no pseudopotential for {", ".join(missing)}.'
    if str(functional).lower() == 'hse06':
        pseudos = family.get_pseudos(elements=sorted(structure.get_symbols_set()))
        not_nc = sorted(element for element, pseudo in pseudos.items() if pseudo_type(pseudo) not in ('NC', 'SL'))
        if not_nc:
            return (
                f'hse06 with stress needs norm-conserving pseudopotentials in pw.x; family {label!r} has other '
                f'types for {", ".join(not_nc)}.'
            )
    return None


def number_of_bands(structure: orm.StructureData, pseudos: Mapping, extra_fraction: float = 0.1) -> int:
    """Occupied bands (valence electrons / 2, rounded up) plus ``max(4, extra_fraction × occupied)`` empty ones.

    Empty bands keep Davidson from converging onto the wrong occupied subspace when the gap is small (seen at Γ in
    the 13-atom Li6PS5Cl cell with exactly nelec/2 bands); with fixed occupations they stay empty.
    """
    electrons = sum(float(pseudos[site.kind_name].z_valence) for site in structure.sites)
    occupied = math.ceil(electrons / 2 - 1e-8)
    return occupied + max(4, math.ceil(extra_fraction * occupied))


def get_builder(
    code: orm.AbstractCode,
    structure: orm.StructureData,
    functional: str,
    protocol: str = 'moderate',
    overrides: Mapping | None = None,
    options: Mapping | None = None,
    *,
    pseudo_family: str | None = None,
):
    """A builder of :class:`MlffdiffPwBaseWorkChain` for one single point (energy, forces, stress).

    :param functional: 'pbe' or 'hse06'.
    :param protocol: 'fast', 'moderate' or 'precise' (``protocols/reference_qe.yaml``).
    :param overrides: keys of a protocol entry (``ecutwfc``, ``dual``, ``conv_thr_per_atom``, ``kpoints_spacing``,
        ``kpoints_mesh``, ``ecutfock_factor``, ``max_iterations``, ``max_wallclock_seconds``, ``num_threads``,
        ``clean_workdir``, ``settings``, and ``parameters`` = pw.x namelists, merged recursively; explicit
        namelist values win over the derived ones).
    :param options: merged into ``pw.metadata.options``. Default: one machine, one MPI rank, ``withmpi`` only when
        more than one rank is asked for, ``OMP_NUM_THREADS`` = ``num_threads`` of the protocol.
    :param pseudo_family: label of an aiida-pseudo family (default: the family of ``aiida-mlffdiff setup``). When
        the family recommends cutoffs (SSSP, PseudoDojo), the larger of those and the protocol's are used.
    :raises ValueError: bad functional, protocol, override, structure or family.
    """
    settings = get_settings(functional, protocol, overrides)  # unknown protocol or functional: ValueError here
    # build validates the structure and the family, once
    builder = build(code, structure, functional, settings, options, pseudo_family=pseudo_family)
    builder.metadata.label = f'qe-{str(functional).lower()}-{protocol}'
    return builder


def build(
    code: orm.AbstractCode,
    structure: orm.StructureData,
    functional: str,
    settings: Mapping,
    options: Mapping | None = None,
    *,
    pseudo_family: str | None = None,
):
    """A builder of :class:`MlffdiffPwBaseWorkChain` from resolved ``settings`` (:func:`get_settings`).

    :raises ValueError: a setting key that is not one, a structure or family the run cannot take.
    """
    import sys

    check_settings(settings)
    problem = validate(structure, functional, None, pseudo_family=pseudo_family)
    if problem:
        raise ValueError(problem)
    functional = str(functional).lower()
    family = load_pseudo_family(pseudo_family or default_pseudo_family())

    ecutwfc, ecutrho = float(settings['ecutwfc']), float(settings['ecutwfc']) * float(settings['dual'])
    if hasattr(family, 'get_recommended_cutoffs'):
        try:
            wfc, rho = family.get_recommended_cutoffs(structure=structure, unit='Ry')
            ecutwfc, ecutrho = max(ecutwfc, wfc), max(ecutrho, rho)
        except Exception:  # a family without cutoffs for this stringency: keep the protocol's
            pass
    system = {'ecutwfc': ecutwfc, 'ecutrho': ecutrho}
    if 'ecutfock_factor' in settings:
        system['ecutfock'] = min(float(settings['ecutfock_factor']) * ecutwfc, ecutrho)
    generated = {
        'SYSTEM': system,
        'ELECTRONS': {'conv_thr': float(settings['conv_thr_per_atom']) * len(structure.sites)},
    }
    parameters = merge(generated, settings.get('parameters'))
    pseudos = family.get_pseudos(structure=structure)
    system = parameters['SYSTEM']
    if system.get('occupations') == 'fixed' and 'nbnd' not in system:
        system['nbnd'] = number_of_bands(structure, pseudos, float(settings.get('extra_bands_fraction', 0.1)))

    mesh = settings.get('kpoints_mesh') or kpoints_mesh(structure.cell, settings.get('kpoints_spacing'))
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    kpoints.set_kpoints_mesh([int(n) for n in mesh])
    pw_settings = dict(settings.get('settings') or {})
    if list(mesh) == [1, 1, 1]:
        pw_settings.setdefault('gamma_only', True)

    num_threads = int(settings.get('num_threads', 1))
    run_options = merge(
        {
            'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
            'max_wallclock_seconds': int(settings['max_wallclock_seconds']),
            'environment_variables': {'OMP_NUM_THREADS': str(num_threads)},
        },
        options,
    )
    if 'withmpi' not in run_options:
        resources_ = run_options['resources']
        ranks = int(resources_.get('num_machines', 1)) * int(resources_.get('num_mpiprocs_per_machine', 1))
        run_options['withmpi'] = ranks > 1

    builder = sys.modules[__name__].WORKCHAIN.get_builder()
    builder.pw.code = code
    builder.pw.structure = structure
    builder.pw.parameters = orm.Dict(parameters)
    builder.pw.pseudos = pseudos
    builder.pw.metadata.options = run_options
    if pw_settings:
        builder.pw.settings = orm.Dict(pw_settings)
    builder.kpoints = kpoints
    builder.max_iterations = orm.Int(int(settings.get('max_iterations', 5)))
    builder.clean_workdir = orm.Bool(bool(settings.get('clean_workdir', False)))
    builder.metadata.label = f'qe-{functional}'
    return builder


def labels_from_outputs(outputs: Mapping[str, orm.Data]) -> Labels:
    """Energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign) from ``output_parameters`` and ``output_trajectory``.

    :raises DftOutputError: a port is missing, or the energy/forces are absent or in unexpected units.
    """
    missing = [name for name in OUTPUT_PORTS if name not in outputs]
    if missing:
        raise DftOutputError(f'missing QE outputs: {", ".join(missing)} (need {", ".join(OUTPUT_PORTS)}).')
    parameters = outputs['output_parameters'].get_dict()
    if 'energy' not in parameters:
        raise DftOutputError('output_parameters has no total energy.')
    if parameters.get('energy_units', 'eV') != 'eV':
        raise DftOutputError(f'unexpected energy unit {parameters["energy_units"]!r} (expected eV).')
    trajectory = outputs['output_trajectory']
    names = trajectory.get_arraynames()
    if 'forces' not in names:
        raise DftOutputError('output_trajectory has no forces: was tprnfor set?')
    if parameters.get('forces_units', 'ev / angstrom').lower() not in ('ev / angstrom', 'ev/angstrom'):
        raise DftOutputError(f'unexpected force unit {parameters["forces_units"]!r} (expected eV/Å).')
    forces = np.asarray(trajectory.get_array('forces'), dtype=float)[-1]
    stress = None
    if 'stress' in names:
        if parameters.get('stress_units', 'GPascal') != 'GPascal':
            raise DftOutputError(f'unexpected stress unit {parameters["stress_units"]!r} (expected GPascal).')
        stress = -np.asarray(trajectory.get_array('stress'), dtype=float)[-1] / GPA_PER_EV_A3
    return Labels(float(parameters['energy']), forces, stress)
