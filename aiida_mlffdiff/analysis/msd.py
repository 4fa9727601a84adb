"""Mean-squared displacements with all time origins, computed by FFT in O(T log T).

For a trajectory of ``T`` frames the MSD at lag ``m`` (in frames) averages over all ``T - m`` time
origins: ``MSD(m) = <|r(k+m) - r(k)|²>_k``. It is split as ``S1(m) - 2 S2(m)`` where ``S2`` is the
position autocorrelation (FFT) and ``S1`` comes from prefix sums of ``|r(k)|²`` (Calandrini et al.,
nMoldyn, J. Chem. Phys. 2011; the usual algorithm of e.g. tidynamics).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import fft

from .errors import AnalysisError
from .unwrap import check_positions


def _selector(atoms, n_atoms: int) -> slice | np.ndarray:
    """A slice when the selected atoms are contiguous (a view, no copy), else an index array."""
    if atoms is None:
        return slice(None)
    atoms = np.asarray(atoms)
    indices = np.flatnonzero(atoms) if atoms.dtype == bool else atoms.astype(int)
    if atoms.dtype == bool and atoms.shape != (n_atoms,):
        raise AnalysisError(f'the atom mask must have shape ({n_atoms},), got {atoms.shape}.')
    if indices.size == 0:
        raise AnalysisError('no atom selected for the MSD.')
    if indices.min() < 0 or indices.max() >= n_atoms:
        raise AnalysisError(f'atom indices must lie in [0, {n_atoms}).')
    if np.all(np.diff(indices) == 1):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


_workspaces = threading.local()
#: Buffer shapes kept per thread (the big per-replica one and the small drift-correction ones).
_MAX_WORKSPACES = 4
#: Bytes of FFT input plus output per chunk of atoms: small enough to stay in a core's L2 cache.
_CHUNK_BYTES = 2 * 2**20


def _workspace(rows: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded FFT input ``(rows, size)`` and its complex output, reused between calls of one thread.

    Fresh multi-megabyte arrays for every replica cost more in page faults than the FFT itself; the
    padding columns are never written, so they stay zero.
    """
    cache = _workspaces.__dict__.setdefault('buffers', {})
    if (rows, size) not in cache:
        if len(cache) >= _MAX_WORKSPACES:
            cache.pop(next(iter(cache)))
        cache[rows, size] = (np.zeros((rows, size)), np.empty((rows, size // 2 + 1), dtype=complex))
    return cache[rows, size]


def _mean_msd_fft(x: np.ndarray, select: slice | np.ndarray = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """MSD for every lag ``0 .. T-1`` averaged over the atoms ``select`` of ``x`` (``(T, n, 3)``), in x² units.

    The autocorrelation is linear in the power spectrum, so the power spectra of all columns are summed
    before a single inverse FFT: the cost is one forward real FFT per column. Atoms are processed in
    chunks small enough for the buffers to stay in the CPU cache.

    :return: ``(msd, mean_displacement)``, the latter ``(T, 3)``: the mean displacement of the atoms.
    """
    n_frames = x.shape[0]
    chosen = x[:, select]
    n_atoms = chosen.shape[1]
    size = fft.next_fast_len(2 * n_frames, real=True)
    chunk = max(1, min(n_atoms, _CHUNK_BYTES // (3 * size * 8 * 2)))
    padded, spectrum = _workspace(chunk * 3, size)
    power = np.zeros(2 * spectrum.shape[1])
    squares = np.zeros(n_frames)
    displacement_sum = np.zeros((3, n_frames))
    for first in range(0, n_atoms, chunk):
        part = chosen[:, first : first + chunk]
        rows = 3 * part.shape[1]
        # Translation invariance: start every column at 0 (smaller numbers, less cancellation), written
        # straight into the zero-padded buffer with the time axis contiguous (about twice as fast an FFT).
        columns = padded[:rows, :n_frames]
        np.subtract(part, part[0], out=columns.T.reshape(part.shape))
        squares += np.einsum('ct,ct->t', columns, columns)
        displacement_sum += columns.reshape(-1, 3, n_frames).sum(axis=0)
        np.fft.rfft(padded[:rows], axis=-1, out=spectrum[:rows])
        interleaved = spectrum[:rows].view(np.float64).reshape(rows, -1)  # re, im, re, im, ...
        power += np.einsum('cj,cj->j', interleaved, interleaved)
    counts = n_frames - np.arange(n_frames)
    s2 = np.fft.irfft(power[0::2] + power[1::2], n=size)[:n_frames] / counts
    prefix = np.concatenate([[0.0], np.cumsum(squares)])
    lags = np.arange(n_frames)
    s1 = (prefix[n_frames - lags] + prefix[n_frames] - prefix[lags]) / counts
    return (s1 - 2.0 * s2) / n_atoms, displacement_sum.T / n_atoms


def _single_msd(trajectory: np.ndarray) -> np.ndarray:
    """MSD of one ``(T, 3)`` trajectory, all time origins."""
    return _mean_msd_fft(trajectory[:, None, :])[0]


def _check_drift(drift, n_frames: int) -> np.ndarray | None:
    if drift is None:
        return None
    drift = np.asarray(drift, dtype=float)
    if drift.shape != (n_frames, 3):
        raise AnalysisError(f'drift must have shape ({n_frames}, 3), got {drift.shape}.')
    return drift


def tracer_msd(positions, atoms=None, *, drift=None) -> np.ndarray:
    """Tracer MSD (Å²) averaged over ``atoms`` and all time origins, for lags ``0 .. T-1`` frames.

    :param positions: unwrapped Cartesian positions ``(n_frames, n_atoms, 3)`` in Å.
    :param atoms: boolean mask or indices of the atoms to average (all if omitted).
    :param drift: optional ``(n_frames, 3)`` displacement (Å) of the reference frame, e.g. the framework's
        centre of mass from :func:`~.unwrap.framework_drift`, subtracted from every atom. Done without
        copying the positions: ``<|Δ(r_i − R)|²> = <|Δr_i|²> + |Δ(r̄ − R)|² − |Δr̄|²`` with r̄ the mean of
        the atoms, exactly, for every time origin.
    """
    array = check_positions(positions)
    select = _selector(atoms, array.shape[1])
    drift = _check_drift(drift, array.shape[0])
    msd, mean = _mean_msd_fft(array, select)
    if drift is not None:
        msd += _single_msd(mean - drift) - _single_msd(mean)
    return np.clip(msd, 0.0, None)


#: Ions of one trajectory are split into at most this many groups for the single-trajectory error (``ion-groups``).
DEFAULT_ION_GROUPS = 32


def grouped_tracer_msd(
    positions, atoms=None, *, drift=None, n_groups: int = DEFAULT_ION_GROUPS
) -> tuple[np.ndarray, np.ndarray]:
    """Tracer MSD (Å², lags ``0 .. T-1``) of ``n_groups`` disjoint groups of the selected atoms.

    Atom ``i`` of the selection goes to group ``i mod n_groups`` (at most one group per atom), so neighbouring
    indices land in different groups. The size-weighted mean of the group curves is the tracer MSD of all the
    selected atoms (:func:`tracer_msd`, to round-off), at the same cost: every atom is transformed once.
    ``atoms`` and ``drift`` as in :func:`tracer_msd`.

    :return: ``(group_msd_A2 (k, T), group_sizes (k,))``.
    """
    array = check_positions(positions)
    select = _selector(atoms, array.shape[1])
    indices = np.arange(array.shape[1])[select]
    if int(n_groups) < 1:
        raise AnalysisError(f'n_groups must be at least 1, got {n_groups}.')
    count = min(int(n_groups), indices.size)
    drift = _check_drift(drift, array.shape[0])
    curves, sizes = [], []
    for group in range(count):
        members = indices[group::count]
        msd, mean = _mean_msd_fft(array, members)
        if drift is not None:
            msd += _single_msd(mean - drift) - _single_msd(mean)
        curves.append(np.clip(msd, 0.0, None))
        sizes.append(members.size)
    return np.array(curves), np.array(sizes, dtype=int)


def collective_displacement(positions, atoms=None, *, drift=None, charges=None) -> np.ndarray:
    """Charge-weighted total displacement ``Σ_i q_i Δ(r_i − R)(t) / √(Σ_i q_i²)`` (Å), shape ``(T, 3)``.

    Its all-origins MSD is the collective MSD per ion of :func:`collective_msd`; kept whole, it lets one
    trajectory's collective MSD be block-bootstrapped. ``atoms``, ``drift`` and ``charges`` as there.
    """
    array = check_positions(positions)
    chosen = array[:, _selector(atoms, array.shape[1])]
    drift = _check_drift(drift, array.shape[0])
    weights = np.ones(chosen.shape[1]) if charges is None else np.asarray(charges, dtype=float)
    if weights.shape != (chosen.shape[1],):
        raise AnalysisError(f'charges must have shape ({chosen.shape[1]},), got {weights.shape}.')
    total = np.einsum('tni,n->ti', chosen, weights)
    if drift is not None:
        total -= weights.sum() * drift
    total -= total[0]
    return total / np.sqrt(np.sum(weights**2))


def collective_msd(positions, atoms=None, *, drift=None, charges=None) -> np.ndarray:
    """Collective (charge) MSD per ion, Å²: ``<|Σ_i q_i Δ(r_i − R)(t)|²> / Σ_i q_i²`` over all time origins.

    Normalised so that for uncorrelated ions it equals the tracer MSD; the ratio of the tracer and the
    collective diffusion coefficients is then the Haven ratio. ``atoms`` and ``drift`` as in
    :func:`tracer_msd`; ``charges`` (one per selected atom) default to 1.
    """
    return collective_msd_from_displacement(collective_displacement(positions, atoms, drift=drift, charges=charges))


def collective_msd_from_displacement(displacement_A) -> np.ndarray:
    """All-origins MSD (Å²) of a ``(T, 3)`` path, e.g. that of :func:`collective_displacement`."""
    return np.clip(_single_msd(np.asarray(displacement_A, dtype=float)), 0.0, None)


def ensemble_tracer_msd(replicas: Iterable, atoms=None, *, drifts=None, workers: int | None = None) -> np.ndarray:
    """Tracer MSD (Å², lags ``0 .. T-1``) of each of several independent replicas, ``(n_replicas, T)``.

    The replicas are processed concurrently in ``workers`` threads (default: the CPU count): numpy's FFT and
    reductions release the GIL, so this scales with the cores, while at most ``2 × workers`` replicas are
    held at a time (``replicas`` may be a generator that loads one at a time).

    :param replicas: unwrapped Cartesian positions ``(T, n_atoms, 3)`` in Å per replica, all with the same ``T``.
    :param atoms: as in :func:`tracer_msd`, the same for every replica.
    :param drifts: optional ``(T, 3)`` reference-frame displacement (Å) per replica, as ``drift`` of
        :func:`tracer_msd` (an iterable aligned with ``replicas``).
    """
    workers = max(1, int(workers or os.cpu_count() or 1))
    drift_iterator = iter(drifts) if drifts is not None else None
    results: list[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for positions in replicas:
            drift = next(drift_iterator) if drift_iterator is not None else None
            pending.append(pool.submit(tracer_msd, positions, atoms, drift=drift))
            if len(pending) >= 2 * workers:
                results.append(pending.popleft().result())
        results.extend(future.result() for future in pending)
    if not results:
        raise AnalysisError('no replica given.')
    if len({result.shape for result in results}) > 1:
        raise AnalysisError('every replica must have the same number of frames.')
    return np.stack(results)
