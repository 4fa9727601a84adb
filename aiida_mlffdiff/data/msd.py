"""``MsdData``: per-replica mean-squared displacements of one mobile species at one temperature."""

from __future__ import annotations

import numpy as np
from aiida.orm import ArrayData

from ..analysis.errors import AnalysisError
from ..analysis.validation import as_finite_array, positive


class MsdData(ArrayData):
    """MSD curves of independent replicas of the same system, species and temperature.

    Arrays (in the node repository): ``time_ps`` (lags, ps, uniform from 0), ``msd_A2`` (tracer MSD per
    replica, Å², shape ``(n_replicas, n_lags)``) and optionally ``collective_msd_A2`` (collective MSD per
    ion, Å², same shape); for the error of D from a single trajectory, optionally ``ion_group_msd_A2`` (tracer
    MSD of disjoint groups of ions, Å², ``(n_replicas, n_groups, n_lags)``) with ``ion_group_sizes``, and
    ``collective_displacement_A`` (collective displacement per √ion, Å, ``(n_replicas, n_lags, 3)``).
    Attributes (queryable): ``species``, ``temperature_K`` (None if unknown), ``n_ions`` (mobile ions per
    replica), ``volume_A3``, ``charge`` (of the mobile ion, e),
    ``n_replicas``, ``n_lags``, ``frame_interval_ps`` and ``source`` (free text).
    """

    def __init__(
        self,
        *,
        time_ps,
        msd_A2,
        species: str,
        n_ions: int,
        volume_A3: float,
        temperature_K: float | None = None,
        collective_msd_A2=None,
        ion_group_msd_A2=None,
        ion_group_sizes=None,
        collective_displacement_A=None,
        charge: float = 1.0,
        source: str = '',
        **kwargs,
    ):
        super().__init__(**kwargs)
        time = as_finite_array(time_ps, 'time_ps', ndim=1)
        msd = np.atleast_2d(as_finite_array(msd_A2, 'msd_A2'))
        if msd.ndim != 2 or msd.shape[1] != time.size:
            raise AnalysisError(f'msd_A2 must have shape (n_replicas, {time.size}), got {msd.shape}.')
        if time.size < 2 or time[0] != 0 or np.any(np.diff(time) <= 0):
            raise AnalysisError('time_ps must start at 0 ps and increase.')
        if temperature_K is not None:
            positive(temperature_K, 'temperature_K')
        if int(n_ions) < 1:
            raise AnalysisError(f'n_ions must be at least 1, got {n_ions}.')
        self.set_array('time_ps', time)
        self.set_array('msd_A2', msd)
        if collective_msd_A2 is not None:
            collective = np.atleast_2d(as_finite_array(collective_msd_A2, 'collective_msd_A2'))
            if collective.shape != msd.shape:
                raise AnalysisError(f'collective_msd_A2 must have shape {msd.shape}, got {collective.shape}.')
            self.set_array('collective_msd_A2', collective)
        if ion_group_msd_A2 is not None:
            groups = as_finite_array(ion_group_msd_A2, 'ion_group_msd_A2')
            groups = groups[None] if groups.ndim == 2 else groups
            if groups.ndim != 3 or groups.shape[0] != msd.shape[0] or groups.shape[2] != time.size:
                raise AnalysisError(
                    f'ion_group_msd_A2 must have shape ({msd.shape[0]}, n_groups, {time.size}), got {groups.shape}.'
                )
            sizes = np.asarray(ion_group_sizes if ion_group_sizes is not None else np.ones(groups.shape[1]), dtype=int)
            if sizes.shape != (groups.shape[1],) or sizes.min() < 1 or sizes.sum() != int(n_ions):
                raise AnalysisError(f'ion_group_sizes must be {groups.shape[1]} positive counts adding up to n_ions.')
            self.set_array('ion_group_msd_A2', groups)
            self.set_array('ion_group_sizes', sizes)
        if collective_displacement_A is not None:
            path = as_finite_array(collective_displacement_A, 'collective_displacement_A')
            path = path[None] if path.ndim == 2 else path
            if path.shape != (msd.shape[0], time.size, 3):
                raise AnalysisError(
                    f'collective_displacement_A must have shape ({msd.shape[0]}, {time.size}, 3), got {path.shape}.'
                )
            self.set_array('collective_displacement_A', path)
        attributes = {
            'species': str(species),
            'temperature_K': None if temperature_K is None else float(temperature_K),
            'n_ions': int(n_ions),
            'volume_A3': positive(volume_A3, 'volume_A3'),
            'charge': float(charge),
            'n_replicas': int(msd.shape[0]),
            'n_lags': int(time.size),
            'frame_interval_ps': float(time[1] - time[0]),
            'source': source,
        }
        for key, value in attributes.items():
            self.base.attributes.set(key, value)

    def _attribute(self, key: str):
        return self.base.attributes.get(key)

    @property
    def time_ps(self) -> np.ndarray:
        """Lag times (ps)."""
        return self.get_array('time_ps')

    @property
    def msd_A2(self) -> np.ndarray:
        """Tracer MSD per replica (Å²), shape ``(n_replicas, n_lags)``."""
        return self.get_array('msd_A2')

    @property
    def collective_msd_A2(self) -> np.ndarray | None:
        """Collective MSD per ion per replica (Å²), or None if not stored."""
        return self.get_array('collective_msd_A2') if 'collective_msd_A2' in self.get_arraynames() else None

    def _optional_array(self, name: str) -> np.ndarray | None:
        return self.get_array(name) if name in self.get_arraynames() else None

    @property
    def ion_group_msd_A2(self) -> np.ndarray | None:
        """Tracer MSD of groups of ions per replica (Å², ``(n_replicas, n_groups, n_lags)``), or None."""
        return self._optional_array('ion_group_msd_A2')

    @property
    def ion_group_sizes(self) -> np.ndarray | None:
        """Ions in each group of ``ion_group_msd_A2``, or None."""
        return self._optional_array('ion_group_sizes')

    @property
    def collective_displacement_A(self) -> np.ndarray | None:
        """Collective displacement per √ion per replica (Å, ``(n_replicas, n_lags, 3)``), or None."""
        return self._optional_array('collective_displacement_A')

    @property
    def species(self) -> str:
        """The mobile species."""
        return self._attribute('species')

    @property
    def temperature_K(self) -> float | None:
        """Temperature (K), None if unknown."""
        return self._attribute('temperature_K')

    @property
    def n_ions(self) -> int:
        """Mobile ions per replica."""
        return self._attribute('n_ions')

    @property
    def volume_A3(self) -> float:
        """Cell volume (Å³)."""
        return self._attribute('volume_A3')

    @property
    def charge(self) -> float:
        """Charge number of the mobile ion (e)."""
        return self._attribute('charge')

    @property
    def n_replicas(self) -> int:
        """Number of replicas."""
        return self._attribute('n_replicas')
