"""``EvaluateParser``: predictions of ``evaluate_model.py`` against the reference labels of the input TrainingSet.

Reads only the retrieved files (``evaluate.json``, ``predictions.npz``, the driver's stderr), never the remote
folder. Outputs ``metrics`` (Dict, units in the keys: meV/atom, meV/Å, meV/Å³ and GPa), ``parity`` (ArrayData,
reference vs predicted energies per atom and force components, stresses when both sides have them) and
``run_info`` (Dict: versions, thread counts, timings in s).
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np
from aiida import orm
from aiida.engine import ExitCode

from ..calculations.evaluate import EvaluateCalculation
from ..metrics import MetricsError, evaluation_metrics, parity_arrays
from .driver import DriverParser

__all__ = ('EvaluateParser',)

#: Driver status words (``evaluate.json``) → exit code names of :class:`EvaluateCalculation`.
FAILURES = {
    'model_load_failed': 'ERROR_MODEL_LOAD_FAILED',
    'data_read_failed': 'ERROR_EVALUATION_FAILED',
    'evaluation_failed': 'ERROR_EVALUATION_FAILED',
}


class EvaluateParser(DriverParser):
    """Parse an :class:`EvaluateCalculation`: error metrics and parity arrays from the driver's predictions."""

    FAILURES: ClassVar[dict[str, str]] = FAILURES

    def parse(self, **kwargs) -> ExitCode | None:
        """Check the driver's status, load the predictions, compare them with the dataset and attach the outputs."""
        outputs = self.read_driver_outputs(
            EvaluateCalculation._INFO,
            EvaluateCalculation._PREDICTIONS,
            EvaluateCalculation._STDERR,
            ('energy_eV', 'forces_eV_A', 'n_atoms', 'species'),
        )
        if isinstance(outputs, ExitCode):
            return outputs
        info, predicted = outputs

        reference = self._reference()
        problem = self._inconsistency(reference, predicted)
        if problem:
            return self._exit('ERROR_INCONSISTENT_OUTPUT', problem)
        problem = self._non_finite(predicted)
        if problem:
            return self._exit('ERROR_NON_FINITE_PREDICTIONS', problem)

        use_stress = reference['stress_eV_A3'] is not None and 'stress_eV_A3' in predicted
        arguments = {
            'reference_energy_eV': reference['energy_eV'],
            'predicted_energy_eV': predicted['energy_eV'],
            'n_atoms': reference['n_atoms'],
            'reference_forces_eV_A': reference['forces_eV_A'],
            'predicted_forces_eV_A': predicted['forces_eV_A'],
            'reference_stress_eV_A3': reference['stress_eV_A3'] if use_stress else None,
            'predicted_stress_eV_A3': predicted['stress_eV_A3'] if use_stress else None,
        }
        try:
            metrics = evaluation_metrics(
                species=reference['species'].tolist(), config_types=reference['config_types'], **arguments
            )
            arrays = parity_arrays(**arguments)
        except MetricsError as exception:
            return self._exit('ERROR_INCONSISTENT_OUTPUT', str(exception))

        model, dataset = self.node.inputs.model, self.node.inputs.dataset
        metrics.update(
            architecture=model.architecture,
            model=model.model_name if model.pretrained else model.filename,
            functional=dataset.functional,
            model_gives_stress='stress_eV_A3' in predicted,
        )
        parity = orm.ArrayData()
        for name, array in arrays.items():
            parity.set_array(name, np.ascontiguousarray(array))
        parity.set_array('atomic_numbers', predicted['atomic_numbers'].astype(np.int64))
        parity.set_array('n_atoms', reference['n_atoms'].astype(np.int64))

        self.out('metrics', orm.Dict(metrics))
        self.out('parity', parity)
        self.out('run_info', orm.Dict({k: v for k, v in info.items() if k not in ('status', 'message')}))
        self.logger.info(
            f'{metrics["n_structures"]} configurations: energy MAE {metrics["energy_mae_meV_atom"]:.2f} meV/atom, '
            f'force MAE {metrics["force_mae_meV_A"]:.1f} meV/Å'
        )
        return None

    def _reference(self) -> dict:
        """Reference labels of the dataset: energies (eV), forces (eV/Å), stresses (eV/Å³, Voigt) if all have one."""
        dataset = self.node.inputs.dataset
        atoms_list = dataset.get_atoms()
        stresses = [atoms.calc.results.get('stress') for atoms in atoms_list]
        has_stress = all(stress is not None for stress in stresses)
        return {
            'energy_eV': np.array([atoms.calc.results['energy'] for atoms in atoms_list], dtype=float),
            'forces_eV_A': np.concatenate([atoms.calc.results['forces'] for atoms in atoms_list]).astype(float),
            'stress_eV_A3': np.array([np.reshape(s, 6) for s in stresses], dtype=float) if has_stress else None,
            'n_atoms': np.array([len(atoms) for atoms in atoms_list], dtype=np.int64),
            'species': np.array([s for atoms in atoms_list for s in atoms.get_chemical_symbols()]),
            # per-type errors only when the dataset labels its configurations (e.g. near-equilibrium, md-hot)
            'config_types': [str(atoms.info.get('config_type', 'unlabelled')) for atoms in atoms_list]
            if any('config_type' in atoms.info for atoms in atoms_list)
            else None,
        }

    @staticmethod
    def _inconsistency(reference: dict, predicted: dict) -> str | None:
        """A message if the predictions are not those of the dataset's configurations (counts, order, species)."""
        n_ref, n_pred = len(reference['n_atoms']), len(predicted['n_atoms'])
        if n_ref != n_pred or predicted['energy_eV'].shape != (n_ref,):
            n_energies = predicted['energy_eV'].shape[0] if predicted['energy_eV'].ndim else 0
            return f'{n_pred} configurations predicted ({n_energies} energies), {n_ref} in the dataset'
        if not np.array_equal(reference['n_atoms'], predicted['n_atoms']):
            first = int(np.flatnonzero(reference['n_atoms'] != predicted['n_atoms'])[0])
            return (
                f'configuration {first} has {predicted["n_atoms"][first]} atoms, '
                f'{reference["n_atoms"][first]} in the dataset'
            )
        if predicted['forces_eV_A'].shape != reference['forces_eV_A'].shape:
            return f'forces of shape {predicted["forces_eV_A"].shape}, expected {reference["forces_eV_A"].shape}'
        if not np.array_equal(np.asarray(predicted['species'], dtype=str), reference['species'].astype(str)):
            return 'the species of the predicted atoms differ from the dataset (order or elements)'
        if 'stress_eV_A3' in predicted and predicted['stress_eV_A3'].shape != (n_ref, 6):
            return f'stress of shape {predicted["stress_eV_A3"].shape}, expected ({n_ref}, 6)'
        return None

    @staticmethod
    def _non_finite(predicted: dict) -> str | None:
        """A message naming the configurations with NaN/inf energy, forces or stress; None if all are finite."""
        bad = ~np.isfinite(predicted['energy_eV'])
        bounds = np.concatenate([[0], np.cumsum(predicted['n_atoms'])])
        forces_bad = ~np.isfinite(predicted['forces_eV_A']).all(axis=1)
        bad |= np.array([forces_bad[start:end].any() for start, end in itertools.pairwise(bounds)], dtype=bool)
        if 'stress_eV_A3' in predicted:
            bad |= ~np.isfinite(predicted['stress_eV_A3']).all(axis=1)
        if not bad.any():
            return None
        indices = np.flatnonzero(bad).tolist()
        shown = ', '.join(map(str, indices[:10])) + (', …' if len(indices) > 10 else '')
        return f'{len(indices)} of {bad.size} configurations (indices {shown}) have NaN or infinite values'
