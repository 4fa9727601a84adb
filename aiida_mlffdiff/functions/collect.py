"""``collect_training_set``: DFT single-point outputs of many configurations → one ``TrainingSet``.

Inputs: ``engine`` (Str, 'qe' | 'vasp'), ``functional`` (Str), and one nested namespace per configuration (any
valid link label, e.g. ``c0000``) holding ``structure`` (the StructureData that was computed) and the output nodes
named in the engine's ``OUTPUT_PORTS`` (e.g. ``output_parameters`` and ``output_trajectory`` for QE), so that every
label keeps its provenance link to the DFT CalcJob that created it::

    collect_training_set(engine=Str('qe'), functional=Str('pbe'),
                         c0000={'structure': s0, 'output_parameters': p0, 'output_trajectory': t0}, ...)

Configurations are taken in sorted key order. Nothing is created unless every configuration is valid: a missing
label, NaN/inf, or forces of the wrong shape returns exit code 370 naming the configuration.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from ase.calculators.singlepoint import SinglePointCalculator

from ..data.converters import TrainingSetError
from ..data.training_set import TrainingSet
from ..dft import DftEngineError, DftOutputError, get_dft_engine
from .exit_codes import exit_code

__all__ = ('collect_training_set', 'labelled_configuration')


def labelled_configuration(engine, name: str, inputs: dict):
    """ASE Atoms of configuration ``name`` with its DFT labels (eV, eV/Å, eV/Å³) as a SinglePointCalculator.

    :raises DftOutputError: missing structure or output, wrong shapes, NaN/inf.
    """
    if not isinstance(inputs, dict):
        raise DftOutputError(f'configuration {name!r}: expected a namespace with structure and outputs.')
    structure = inputs.get('structure')
    if not isinstance(structure, orm.StructureData):
        raise DftOutputError(f'configuration {name!r}: no StructureData under "structure".')
    outputs = {port: inputs[port] for port in engine.OUTPUT_PORTS if port in inputs}
    try:
        labels = engine.labels_from_outputs(outputs)
    except DftOutputError as exception:
        raise DftOutputError(f'configuration {name!r}: {exception}') from exception
    atoms = structure.get_ase()
    forces = np.asarray(labels.forces_eV_A, dtype=float)
    if forces.shape != (len(atoms), 3):
        raise DftOutputError(
            f'configuration {name!r}: forces have shape {forces.shape}, the structure has {len(atoms)} atoms.'
        )
    energy = float(labels.energy_eV)
    results = {'energy': energy, 'forces': forces}
    if labels.stress_eV_A3 is not None:
        stress = np.asarray(labels.stress_eV_A3, dtype=float)
        if stress.shape != (3, 3):
            raise DftOutputError(f'configuration {name!r}: stress has shape {stress.shape}, expected (3, 3).')
        results['stress'] = stress
    if not all(np.all(np.isfinite(value)) for value in results.values()):
        raise DftOutputError(f'configuration {name!r}: the energy, forces or stress hold NaN or inf.')
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info['config_type'] = structure.label or name
    atoms.info['config_name'] = name
    return atoms


@calcfunction
def collect_training_set(
    engine: orm.Str, functional: orm.Str, level: orm.Str | None = None, **configurations
) -> TrainingSet:
    """A TrainingSet (energy eV, forces eV/Å, stress eV/Å³) from the DFT outputs of each configuration.

    ``level`` (optional) names the reference-quality level of the DFT settings (e.g. 'gamma', 'converged'); the
    set records it (``reference_level``).

    Exit codes: 370 ERROR_INVALID_DFT_OUTPUT, 371 ERROR_UNKNOWN_DFT_ENGINE, 372 ERROR_NO_CONFIGURATION.
    """
    try:
        module = get_dft_engine(engine.value)
    except DftEngineError as exception:
        return exit_code('ERROR_UNKNOWN_DFT_ENGINE', str(exception))
    if not functional.value.strip():
        return exit_code('ERROR_UNKNOWN_DFT_ENGINE', 'the functional is empty.')
    if not configurations:
        return exit_code('ERROR_NO_CONFIGURATION', 'no configuration given.')
    try:
        atoms_list = [labelled_configuration(module, name, configurations[name]) for name in sorted(configurations)]
    except DftOutputError as exception:
        return exit_code('ERROR_INVALID_DFT_OUTPUT', str(exception))
    name = engine.value.strip().lower()
    what = f'{functional.value} ({level.value} level)' if level is not None and level.value else functional.value
    source = (
        f'{name} {what} single points of {len(atoms_list)} configurations '
        f'(aiida_mlffdiff.functions.collect; engine module {module.__name__})'
    )
    try:
        training_set = TrainingSet.from_atoms(atoms_list, functional=functional.value, engine=name, source=source)
    except TrainingSetError as exception:
        return exit_code('ERROR_INVALID_DFT_OUTPUT', str(exception))
    if level is not None and level.value:
        training_set.base.attributes.set('reference_level', level.value)
    return training_set
