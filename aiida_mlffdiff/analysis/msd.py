"""Mean-squared displacements with all time origins, computed by FFT in O(T log T).

For a trajectory of ``T`` frames the MSD at lag ``m`` (in frames) averages over all ``T - m`` time
origins: ``MSD(m) = <|r(k+m) - r(k)|²>_k``. It is split as ``S1(m) - 2 S2(m)`` where ``S2`` is the
position autocorrelation (FFT) and ``S1`` comes from prefix sums of ``|r(k)|²`` (Calandrini et al.,
nMoldyn, J. Chem. Phys. 2011; the usual algorithm of e.g. tidynamics).
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from .errors import AnalysisError
from .unwrap import check_positions


def _mean_msd_fft(x: np.ndarray) -> np.ndarray:
    """MSD for every lag ``0 .. T-1``, averaged over the columns of ``x`` (shape ``(T, n, 3)``), in x² units.

    The autocorrelation is linear in the power spectrum, so the power spectra of all columns are summed
    before a single inverse FFT: the cost is one forward real FFT per column.
    """
    n_frames, n_columns = x.shape[:2]
    # Translation invariance: start every column at 0 (smaller numbers, less cancellation), then lay the
    # time axis out contiguously, which makes the FFT about twice as fast.
    size = fft.next_fast_len(2 * n_frames, real=True)
    padded = np.zeros((x.shape[1] * x.shape[2], size))
    columns = padded[:, :n_frames]
    np.subtract(x, x[0], out=columns.T.reshape(n_frames, x.shape[1], x.shape[2]))
    squares = np.einsum('ct,ct->t', columns, columns)
    spectrum = fft.rfft(padded, axis=-1)
    interleaved = spectrum.view(np.float64).reshape(padded.shape[0], -1)  # re, im, re, im, ...
    summed = np.einsum('cj,cj->j', interleaved, interleaved)
    power = summed[0::2] + summed[1::2]
    counts = n_frames - np.arange(n_frames)
    s2 = fft.irfft(power, n=size)[:n_frames] / counts
    prefix = np.concatenate([[0.0], np.cumsum(squares)])
    lags = np.arange(n_frames)
    s1 = (prefix[n_frames - lags] + prefix[n_frames] - prefix[lags]) / counts
    return (s1 - 2.0 * s2) / n_columns


def tracer_msd(positions) -> np.ndarray:
    """Tracer MSD (Å²) averaged over the given atoms and all time origins, for lags ``0 .. T-1`` frames.

    :param positions: unwrapped Cartesian positions ``(n_frames, n_atoms, 3)`` in Å of the atoms to average.
    """
    array = check_positions(positions)
    return np.clip(_mean_msd_fft(array), 0.0, None)


def collective_msd(positions, charges=None) -> np.ndarray:
    """Collective (charge) MSD per ion, Å²: ``<|Σ_i q_i Δr_i(t)|²> / Σ_i q_i²`` over all time origins.

    Normalised so that for uncorrelated ions it equals the tracer MSD; the ratio of the tracer and the
    collective diffusion coefficients is then the Haven ratio. ``charges`` default to 1 for every ion.
    """
    array = check_positions(positions)
    weights = np.ones(array.shape[1]) if charges is None else np.asarray(charges, dtype=float)
    if weights.shape != (array.shape[1],):
        raise AnalysisError(f'charges must have shape ({array.shape[1]},), got {weights.shape}.')
    total = np.einsum('tni,n->ti', array, weights)[:, None, :]
    return np.clip(_mean_msd_fft(total) / np.sum(weights**2), 0.0, None)
