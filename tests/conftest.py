"""Shared fixtures: a temporary AiiDA profile (aiida-core's own fixtures) and synthetic trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlffdiff.analysis.synthetic import brownian_trajectory

pytest_plugins = ['aiida.tools.pytest_fixtures']

#: A small triclinic cell (Å) and its atoms: 8 Li diffusing, 8 framework atoms.
CELL = np.array([[9.0, 0.0, 0.0], [1.5, 8.5, 0.0], [1.0, 0.8, 9.5]])
SYMBOLS = ['Li'] * 8 + ['P'] * 2 + ['S'] * 6


@pytest.fixture
def make_positions():
    """Wrapped Cartesian positions (Å) of a synthetic run: ``make_positions(seed, d_cm2_s=2e-5, n_frames=150)``."""

    def factory(seed: int, d_cm2_s: float = 2e-5, n_frames: int = 150, frame_interval_ps: float = 0.1):
        return brownian_trajectory(
            CELL, SYMBOLS, {'Li': d_cm2_s}, n_frames=n_frames, frame_interval_ps=frame_interval_ps, seed=seed
        )

    return factory
