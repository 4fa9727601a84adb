"""The analysis demo: a synthetic Li6PS5Cl-sized trajectory set with a known D(T), analysed through AiiDA.

Until the full study (DFT → training → MD) lands, this is what ``make demo`` runs. The trajectories are
*synthetic* (Brownian Li with a cage rattle in a 52-atom Li24P4S20Cl4 cell, Arrhenius D(T) with
Ea = 0.25 eV): the point is that the analysis recovers a known truth through the same path a user's
AIMD or MLFF trajectories take (XDATCAR files → TrajectoryData → MsdData → D(T) → Arrhenius).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .analysis.synthetic import brownian_trajectory
from .analysis.units import KB_EV_PER_K

SYMBOLS = ['Li'] * 24 + ['P'] * 4 + ['S'] * 20 + ['Cl'] * 4
CELL_A = 10.16  # Å, PBE-relaxed cubic Li6PS5Cl


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo set: temperatures (K), replicas per temperature, frames and their spacing (fs)."""

    temperatures_K: tuple[float, ...] = (600.0, 700.0, 800.0, 900.0)
    n_replicas: int = 8
    n_frames: int = 600
    frame_interval_fs: float = 100.0
    activation_energy_eV: float = 0.25
    prefactor_cm2_s: float = 1.0e-3
    extrapolate_to_K: float = 300.0
    seed: int = 2026

    def true_d(self, temperature_K: float) -> float:
        """The D (cm²/s) the synthetic trajectories were generated with."""
        return self.prefactor_cm2_s * np.exp(-self.activation_energy_eV / (KB_EV_PER_K * temperature_K))


def write_xdatcar(path: Path, positions: np.ndarray, cell: np.ndarray, symbols: list[str]) -> Path:
    """Write a gzipped VASP XDATCAR (fractional coordinates), as an AIMD run would leave it."""
    species = list(dict.fromkeys(symbols))
    counts = [symbols.count(s) for s in species]
    fractional = positions @ np.linalg.inv(cell)
    lines = ['synthetic Li6PS5Cl-like trajectory (aiida-mlffdiff demo)', '1.0']
    lines += [' '.join(f'{x:.10f}' for x in row) for row in cell]
    lines += [' '.join(species), ' '.join(map(str, counts))]
    for frame, coordinates in enumerate(fractional, start=1):
        lines.append(f'Direct configuration= {frame:5d}')
        lines += [f'{x:.8f} {y:.8f} {z:.8f}' for x, y, z in coordinates]
    with gzip.open(path, 'wt') as handle:
        handle.write('\n'.join(lines) + '\n')
    return path


def write_demo_trajectories(directory: Path, settings: DemoSettings) -> dict[float, list[Path]]:
    """Write ``n_replicas`` XDATCAR.gz files per temperature into ``directory``; return them by temperature."""
    directory.mkdir(parents=True, exist_ok=True)
    cell = np.eye(3) * CELL_A
    files: dict[float, list[Path]] = {}
    for t_index, temperature in enumerate(settings.temperatures_K):
        files[temperature] = []
        for replica in range(settings.n_replicas):
            positions = brownian_trajectory(
                cell,
                SYMBOLS,
                {'Li': settings.true_d(temperature)},
                n_frames=settings.n_frames,
                frame_interval_ps=settings.frame_interval_fs * 1e-3,
                seed=settings.seed + 1000 * t_index + replica,
                rattle_amplitude_A=0.25,
                rattle_time_ps=0.15,
                framework_amplitude_A=0.08,
                drift_A_per_ps=(0.02, -0.01, 0.015),
            )
            path = directory / f'XDATCAR_{temperature:.0f}K_r{replica}.gz'
            files[temperature].append(write_xdatcar(path, positions, cell, SYMBOLS))
    return files
