"""``PredictCalculation``: energies, forces and stresses of unlabelled configurations with an MlffModel.

Like :class:`~aiida_mlffdiff.calculations.evaluate.EvaluateCalculation` (the same stand-alone driver
``evaluate_model.py``, in the model's own engine environment, pretrained models included), but for configurations
without reference labels: the displaced supercells of the locality test or of force constants. The configurations are
a ``TrajectoryData`` (positions in Å, one cell per configuration, the same atoms in every one); the job writes them
as ``configurations.extxyz`` and the parser returns the predictions as arrays, nothing compared.
"""

from __future__ import annotations

from aiida import orm
from aiida.common.datastructures import CalcInfo
from aiida.common.folders import Folder

from ..drivers import driver_path
from .evaluate import ModelDriverCalculation, model_code_problem

__all__ = ('PredictCalculation', 'trajectory_atoms')


def trajectory_atoms(configurations: orm.TrajectoryData) -> list:
    """The configurations of a TrajectoryData as periodic ASE Atoms (positions and cells in Å)."""
    from ase import Atoms

    symbols = configurations.symbols
    positions = configurations.get_positions()
    cells = configurations.get_cells()
    return [Atoms(symbols, positions=positions[i], cell=cells[i], pbc=True) for i in range(positions.shape[0])]


def validate_inputs(value, _=None) -> str | None:
    """Submission-time checks: the model covers the species, the code runs the model's engine, the cells exist."""
    model, configurations, code = value.get('model'), value.get('configurations'), value.get('code')
    if model is None or configurations is None:
        return None
    if configurations.get_cells() is None:
        return 'the configurations need a cell per configuration (periodic supercells).'
    if configurations.numsteps < 1:
        return 'the configurations are empty.'
    try:
        model.check_species(sorted(set(configurations.symbols)))
    except ValueError as exception:
        return f'the model cannot predict these configurations: {exception}'
    return model_code_problem(model, code)


class PredictCalculation(ModelDriverCalculation):
    """Predict energies (eV), forces (eV/Å) and stresses (eV/Å³) of every configuration of a TrajectoryData."""

    _DATASET = _INPUT = 'configurations.extxyz'
    _PARSER = 'mlffdiff.predict'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'configurations',
            valid_type=orm.TrajectoryData,
            help='Periodic configurations of the same atoms: positions (Å) and one cell (Å) per configuration.',
        )
        spec.inputs.validator = validate_inputs
        spec.output(
            'predictions',
            valid_type=orm.ArrayData,
            help='energy_eV (n,), forces_eV_A (n, atoms, 3) and, if the model gives them, stress_eV_A3 (n, 6, Voigt).',
        )
        spec.exit_code(
            320, 'ERROR_EVALUATION_FAILED', invalidates_cache=True, message='The evaluation failed: {message}'
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the driver and the configurations (extxyz), copy the model file(s), set the command line."""
        from ase.io import write

        folder.insert_path(str(driver_path('evaluate_model')), self._DRIVER)
        with folder.open(self._DATASET, 'w') as handle:
            write(handle, trajectory_atoms(self.inputs.configurations), format='extxyz')
        threads = self.inputs.metadata.options.num_threads
        return self.driver_calcinfo(self.cmdline(), self.model_copy_list(), threads=threads)
