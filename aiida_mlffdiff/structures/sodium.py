"""Tetragonal Na3PS4 (P-42₁c, No. 114), the ordered Na conductor of the universal-model tests.

Every site fully occupied (Z = 2, 16 atoms): Na1 on 4d (0 ½ z), Na2 on 2a (0 0 0), P on 2b (0 0 ½) and S on 8e
(x y z), with the Rietveld refinement of pristine t-Na3PS4 by Z. Yu *et al.*, Sci. Rep. 6, 33733 (2016), Table 3:
a = 6.956 Å, c = 7.088 Å, Na1 z = 0.426, S (0.315, 0.345, 0.167); the cell agrees with M. Jansen and U. Henseler,
J. Solid State Chem. 99, 110 (1992) (a = 6.952 Å, c = 7.076 Å). P–S = 2.05 Å in isolated PS4 tetrahedra.
Formal charges Na +1, P +5, S −2. No Li anywhere: the project's chain must not assume the mobile ion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ase.spacegroup import crystal

if TYPE_CHECKING:
    from aiida.orm import StructureData
    from ase import Atoms

#: Tetragonal lattice parameters of Na3PS4 (Å), Yu et al. (2016).
A_NA3PS4_A, C_NA3PS4_A = 6.956, 7.088
#: Formal charges (e).
NA3PS4_CHARGES = {'Na': 1.0, 'P': 5.0, 'S': -2.0}
NA3PS4_SOURCE = (
    'aiida_mlffdiff.structures.sodium: t-Na3PS4, P-42(1)c (114), Na1 4d (0 1/2 0.426), Na2 2a (0 0 0), P 2b '
    '(0 0 1/2), S 8e (0.315 0.345 0.167), all fully occupied; Z. Yu et al., Sci. Rep. 6, 33733 (2016), Table 3'
)


def na3ps4(a_A: float = A_NA3PS4_A, c_A: float = C_NA3PS4_A) -> Atoms:
    """The 16-atom tetragonal Na3PS4 cell as ASE Atoms (Å, periodic), Na first, then P, then S.

    :param a_A: lattice parameter a (Å, 6–8).
    :param c_A: lattice parameter c (Å, 6–8).
    :raises ValueError: a lattice parameter out of range.
    """
    for name, value in (('a_A', a_A), ('c_A', c_A)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 6.0 <= value <= 8.0:
            raise ValueError(f'{name} must be a lattice parameter in Å between 6 and 8, got {value!r}.')
    atoms = crystal(
        ['Na', 'Na', 'P', 'S'],
        basis=[(0.0, 0.5, 0.426), (0.0, 0.0, 0.0), (0.0, 0.0, 0.5), (0.315, 0.345, 0.167)],
        spacegroup=114,
        cellpar=[a_A, a_A, c_A, 90, 90, 90],
        primitive_cell=False,
    )
    order = sorted(range(len(atoms)), key=lambda i: ('Na', 'P', 'S').index(atoms[i].symbol))
    atoms = atoms[order]
    atoms.info.clear()  # crystal()'s spacegroup object is not JSON: keep only the source and the charges
    atoms.info.update(
        mlffdiff_source=NA3PS4_SOURCE + f', a = {a_A} A, c = {c_A} A',
        mlffdiff_formal_charges=dict(NA3PS4_CHARGES),
    )
    return atoms


def na3ps4_structure(a_A: float = A_NA3PS4_A, c_A: float = C_NA3PS4_A) -> StructureData:
    """The :func:`na3ps4` cell as an unstored ``StructureData`` with ``mlffdiff_source`` and
    ``mlffdiff_formal_charges`` in its attributes."""
    from .nodes import as_structure_data

    return as_structure_data(na3ps4(a_A, c_A))
