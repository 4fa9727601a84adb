"""``MdEnsembleParser``: MSD of the healthy replicas of an :class:`MdEnsembleCalculation`, and their thermo.

Reads only the retrieved files (``md_ensemble_info.json``, ``md_ensemble.npz``, the driver's stderr). Outputs

- ``thermo`` (Dict, always when the npz is readable): per replica ``status`` (ok, nan, atoms_too_close,
  temperature_runaway, error), ``seed``, ``n_frames_done``, ``temperature_mean_K``, ``temperature_std_K``,
  ``energy_drift_eV_atom_ps``; ``n_replicas``, ``n_ok``, ``n_excluded``, ``excluded`` (indices) and
  ``max_failed_fraction``.
- ``msd`` (MsdData): tracer and collective MSD (Å²) of the mobile species for the OK replicas only, each
  corrected for the drift of its framework's centre of mass; ``temperature_K``, ``species``, ``n_ions`` and
  ``volume_A3`` (of the MD cell) set.
- ``run_info`` (Dict): versions, workers, timings (s), model-call share.

Exit codes: ``ERROR_MISSING_OUTPUT`` (300: files absent or unreadable), ``ERROR_MODEL_LOAD_FAILED`` (310),
``ERROR_MD_FAILED`` (320), ``ERROR_ALL_REPLICAS_FAILED`` (330: ``thermo`` attached, no ``msd``),
``ERROR_TOO_MANY_FAILED_REPLICAS`` (340: more than ``max_failed_fraction`` of the replicas failed; ``thermo``
and the ``msd`` of the OK replicas are still attached so that nothing computed is lost, but the job is marked
failed so that a workflow does not use a possibly biased ensemble — a replica that blew up may have been in a
region of configuration space that the surviving ones under-sample).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from aiida import orm
from aiida.engine import ExitCode

from ..analysis import collective_msd, ensemble_tracer_msd
from ..calculations.md_ensemble import MdEnsembleCalculation, build_atoms
from ..data.msd import MsdData
from .driver import DriverParser

__all__ = ('MdEnsembleParser', 'ensemble_msd', 'ensemble_thermo', 'failure_summary', 'too_many_failed')

FAILURES = {
    'model_load_failed': 'ERROR_MODEL_LOAD_FAILED',
    'md_failed': 'ERROR_MD_FAILED',
    'bad_config': 'ERROR_MD_FAILED',
}
REQUIRED_ARRAYS = (
    'positions_A',
    'framework_com_A',
    'time_ps',
    'status',
    'temperature_mean_K',
    'temperature_std_K',
    'energy_drift_eV_atom_ps',
    'seeds',
    'n_frames_done',
)


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def ensemble_thermo(arrays: dict, messages: dict[int, str], max_failed: float) -> tuple[dict, list[int]]:
    """The ``thermo`` output of an ensemble and the indices of its OK replicas (shared by every MD engine).

    A replica is OK when its status is ``ok``, it reached every frame and its positions (Å) and framework
    centre-of-mass drift (Å) are finite. ``arrays`` holds the driver's npz arrays (see the module docstring);
    ``messages`` maps replica index → message.
    """
    statuses = [str(s) for s in arrays['status']]
    n_frames = arrays['time_ps'].size
    ok = [
        i
        for i, s in enumerate(statuses)
        if s == 'ok'
        and arrays['n_frames_done'][i] == n_frames
        and np.isfinite(arrays['positions_A'][i]).all()
        and np.isfinite(arrays['framework_com_A'][i]).all()
    ]
    excluded = [i for i in range(len(statuses)) if i not in ok]
    replicas = [
        {
            'index': i,
            'seed': int(arrays['seeds'][i]),
            'status': statuses[i],
            'n_frames_done': int(arrays['n_frames_done'][i]),
            'temperature_mean_K': _finite_or_none(arrays['temperature_mean_K'][i]),
            'temperature_std_K': _finite_or_none(arrays['temperature_std_K'][i]),
            'energy_drift_eV_atom_ps': _finite_or_none(arrays['energy_drift_eV_atom_ps'][i]),
            'message': messages.get(i, ''),
        }
        for i in range(len(statuses))
    ]
    thermo = {
        'replicas': replicas,
        'n_replicas': len(statuses),
        'n_ok': len(ok),
        'n_excluded': len(excluded),
        'excluded': excluded,
        'max_failed_fraction': max_failed,
    }
    return thermo, ok


def failure_summary(thermo: dict) -> str:
    """One line naming the excluded replicas of a ``thermo`` dict, their status and message."""
    replicas = thermo['replicas']
    return ', '.join(
        f'replica {i}: {replicas[i]["status"]} {replicas[i]["message"]}'.strip() for i in thermo['excluded']
    )


def too_many_failed(thermo: dict) -> bool:
    """Whether more than ``max_failed_fraction`` of the replicas of a ``thermo`` dict were excluded."""
    return thermo['n_excluded'] / thermo['n_replicas'] > thermo['max_failed_fraction']


def ensemble_msd(arrays: dict, ok: list[int], parameters: dict, volume_A3: float, source: str) -> MsdData:
    """Tracer and collective MSD (Å²) of the OK replicas, each corrected for its framework's drift (Å).

    :param parameters: the validated MD parameters (``temperature_K``, ``mobile_species``, ``mobile_charge``).
    :param volume_A3: volume of the MD cell (Å³).
    """
    drift = arrays['framework_com_A']
    positions = arrays['positions_A']
    tracer = ensemble_tracer_msd((positions[i] for i in ok), drifts=(drift[i] for i in ok))
    collective = np.stack([collective_msd(positions[i], drift=drift[i]) for i in ok])
    return MsdData(
        time_ps=arrays['time_ps'],
        msd_A2=tracer,
        collective_msd_A2=collective,
        species=parameters.get('mobile_species', 'Li'),
        charge=float(parameters.get('mobile_charge', 1.0)),
        n_ions=positions.shape[2],
        volume_A3=volume_A3,
        temperature_K=float(parameters['temperature_K']),
        source=source,
    )


class MdEnsembleParser(DriverParser):
    """Parse an :class:`MdEnsembleCalculation`: MSD of the OK replicas and per-replica thermo."""

    FAILURES: ClassVar[dict[str, str]] = FAILURES

    def parse(self, **kwargs) -> ExitCode | None:
        outputs = self.read_driver_outputs(
            MdEnsembleCalculation._INFO, MdEnsembleCalculation._OUTPUT, MdEnsembleCalculation._STDERR, REQUIRED_ARRAYS
        )
        if isinstance(outputs, ExitCode):
            return outputs
        info, arrays = outputs

        self.out('run_info', orm.Dict(info))
        parameters = self.node.inputs.parameters.get_dict()
        max_failed = float(parameters.get('max_failed_fraction', 0.5))
        messages = {r['index']: r.get('message', '') for r in info.get('replicas', [])}
        thermo, ok = ensemble_thermo(arrays, messages, max_failed)
        self.out('thermo', orm.Dict(thermo))
        summary = failure_summary(thermo)
        if not ok:
            return self._exit('ERROR_ALL_REPLICAS_FAILED', summary)

        inputs = self.node.inputs
        atoms = build_atoms(inputs.structure, inputs.supercell if 'supercell' in inputs else None)
        msd = ensemble_msd(
            arrays,
            ok,
            parameters,
            float(atoms.get_volume()),
            f'MdEnsembleCalculation {self.node.uuid}: {len(ok)} of {thermo["n_replicas"]} replicas',
        )
        self.out('msd', msd)
        if too_many_failed(thermo):
            n_excluded, n_replicas = thermo['n_excluded'], thermo['n_replicas']
            return self._exit(
                'ERROR_TOO_MANY_FAILED_REPLICAS',
                f'{n_excluded} of {n_replicas} failed (> {max_failed:g}): {summary}',
            )
        return None
