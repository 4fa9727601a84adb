"""Tetragonal Na3PS4 built by code: composition, symmetry, bond lengths and the recorded source."""

import numpy as np
import pytest
import spglib

from aiida_mlffdiff.structures import A_NA3PS4_A, C_NA3PS4_A, na3ps4, na3ps4_structure


def test_na3ps4_cell():
    atoms = na3ps4()
    assert atoms.get_chemical_formula() == 'Na6P2S8'
    assert np.allclose(atoms.cell.cellpar(), [A_NA3PS4_A, A_NA3PS4_A, C_NA3PS4_A, 90, 90, 90])
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    assert spglib.get_spacegroup(cell, symprec=1e-3) == 'P-42_1c (114)'
    distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e3
    symbols = np.array(atoms.get_chemical_symbols())
    p_s = np.sort(distances[symbols == 'P'][:, symbols == 'S'], axis=1)[:, :4]
    assert np.allclose(p_s, 2.054, atol=0.005)  # isolated PS4 tetrahedra
    assert 2.75 < distances[symbols == 'Na'][:, symbols == 'S'].min() < 2.85
    assert distances.min() == pytest.approx(p_s.min())
    assert 'Sci. Rep. 6, 33733' in atoms.info['mlffdiff_source']
    charges = atoms.info['mlffdiff_formal_charges']
    assert sum(charges[symbol] for symbol in symbols) == 0


def test_na3ps4_structure_and_bad_parameters():
    structure = na3ps4_structure(a_A=7.0)
    assert structure.get_formula() == 'Na6P2S8'
    assert structure.base.attributes.get('mlffdiff_formal_charges') == {'Na': 1.0, 'P': 5.0, 'S': -2.0}
    with pytest.raises(ValueError, match='between 6 and 8'):
        na3ps4(c_A=12)
