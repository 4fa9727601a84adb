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


def _msd_fft_columns(x: np.ndarray) -> np.ndarray:
    """MSD for every column of ``x`` with shape ``(T, n, 3)``; returns ``(T, n)`` in the units of x²."""
    n_frames = x.shape[0]
    x = x - x[0]  # translation invariance: smaller numbers, less cancellation
    size = fft.next_fast_len(2 * n_frames)
    spectrum = fft.rfft(x, n=size, axis=0)
    power = (spectrum.real**2 + spectrum.imag**2).sum(axis=-1)
    autocorrelation = fft.irfft(power, n=size, axis=0)[:n_frames]
    counts = (n_frames - np.arange(n_frames))[:, None]
    s2 = autocorrelation / counts
    squares = np.einsum('tni,tni->tn', x, x)
    prefix = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(squares, axis=0)])
    lags = np.arange(n_frames)
    s1 = (prefix[n_frames - lags] + prefix[n_frames] - prefix[lags]) / counts
    return s1 - 2.0 * s2


def tracer_msd(positions) -> np.ndarray:
    """Tracer MSD (Å²) averaged over the given atoms and all time origins, for lags ``0 .. T-1`` frames.

    :param positions: unwrapped Cartesian positions ``(n_frames, n_atoms, 3)`` in Å of the atoms to average.
    """
    array = check_positions(positions)
    return np.clip(_msd_fft_columns(array).mean(axis=1), 0.0, None)


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
    return np.clip(_msd_fft_columns(total)[:, 0] / np.sum(weights**2), 0.0, None)
