"""``PredictParser``: the predictions of ``evaluate_model.py`` for the configurations of a PredictCalculation.

Reads only the retrieved files; checks that the predictions are those of the input configurations (count, atoms,
species in order) and finite, and returns them as ``predictions`` (ArrayData: ``energy_eV`` (n,), ``forces_eV_A``
(n, atoms, 3), ``stress_eV_A3`` (n, 6) when the model gives one) and ``run_info``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from aiida import orm
from aiida.engine import ExitCode

from ..calculations.predict import PredictCalculation
from .driver import DriverParser

__all__ = ('PredictParser',)

FAILURES = {
    'model_load_failed': 'ERROR_MODEL_LOAD_FAILED',
    'data_read_failed': 'ERROR_EVALUATION_FAILED',
    'evaluation_failed': 'ERROR_EVALUATION_FAILED',
}


class PredictParser(DriverParser):
    """Parse a :class:`PredictCalculation` into its ``predictions`` arrays."""

    FAILURES: ClassVar[dict[str, str]] = FAILURES

    def parse(self, **kwargs) -> ExitCode | None:
        outputs = self.read_driver_outputs(
            PredictCalculation._INFO,
            PredictCalculation._PREDICTIONS,
            PredictCalculation._STDERR,
            ('energy_eV', 'forces_eV_A', 'n_atoms', 'species'),
        )
        if isinstance(outputs, ExitCode):
            return outputs
        info, predicted = outputs
        configurations = self.node.inputs.configurations
        n_configurations, symbols = configurations.numsteps, list(configurations.symbols)
        n_atoms = len(symbols)
        if predicted['energy_eV'].shape != (n_configurations,) or not np.all(predicted['n_atoms'] == n_atoms):
            return self._exit(
                'ERROR_INCONSISTENT_OUTPUT',
                f'{predicted["energy_eV"].size} configurations predicted, {n_configurations} of {n_atoms} atoms given',
            )
        if predicted['forces_eV_A'].shape != (n_configurations * n_atoms, 3):
            return self._exit('ERROR_INCONSISTENT_OUTPUT', f'forces of shape {predicted["forces_eV_A"].shape}')
        if np.asarray(predicted['species'], dtype=str).tolist() != symbols * n_configurations:
            return self._exit('ERROR_INCONSISTENT_OUTPUT', 'the species of the predicted atoms differ (order)')
        forces = predicted['forces_eV_A'].reshape(n_configurations, n_atoms, 3)
        bad = ~np.isfinite(predicted['energy_eV']) | ~np.isfinite(forces).all(axis=(1, 2))
        if bad.any():
            return self._exit(
                'ERROR_NON_FINITE_PREDICTIONS', f'configurations {np.flatnonzero(bad)[:10].tolist()} (first ten)'
            )
        arrays = orm.ArrayData()
        arrays.set_array('energy_eV', predicted['energy_eV'].astype(float))
        arrays.set_array('forces_eV_A', np.ascontiguousarray(forces, dtype=float))
        if 'stress_eV_A3' in predicted:
            arrays.set_array('stress_eV_A3', predicted['stress_eV_A3'].astype(float))
        self.out('predictions', arrays)
        self.out('run_info', orm.Dict({k: v for k, v in info.items() if k not in ('status', 'message')}))
        return None
