"""The shipped α-Li3N cell: composition, the published geometry, symmetry (spglib), charges and its record."""

import numpy as np
import pytest

from aiida_mlffdiff.structures import A_LI3N_A, C_LI3N_A, LI3N_CHARGES, ewald_energy, li3n, li3n_structure


@pytest.mark.parametrize(('supercell', 'n_atoms'), [((1, 1, 1), 4), ((2, 2, 1), 16), ((2, 2, 2), 32)])
def test_composition_and_distances(supercell, n_atoms):
    atoms = li3n(supercell)
    symbols = atoms.get_chemical_symbols()
    assert len(atoms) == n_atoms
    assert symbols == ['Li'] * (3 * n_atoms // 4) + ['N'] * (n_atoms // 4)
    assert sum(LI3N_CHARGES[s] for s in symbols) == 0
    nitrogen = [i for i, s in enumerate(symbols) if s == 'N']
    distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e3
    li_n = np.sort(distances[nitrogen][:, [i for i, s in enumerate(symbols) if s == 'Li']], axis=1)
    # every N: 2 Li(1) at c/2 along c, 6 Li(2) at a/√3 in the layer (fewer distinct ones in the 1x1x1 cell)
    assert li_n[:, 0] == pytest.approx(C_LI3N_A / 2)
    assert distances.min() == pytest.approx(C_LI3N_A / 2)
    if supercell == (2, 2, 2):
        assert li_n[:, :8] == pytest.approx(np.tile([C_LI3N_A / 2] * 2 + [A_LI3N_A / np.sqrt(3)] * 6, (8, 1)))


def test_space_group_is_p6_mmm():
    spglib = pytest.importorskip('spglib')
    atoms = li3n((2, 2, 1))
    dataset = spglib.get_symmetry_dataset((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=1e-4)
    assert (dataset.number, dataset.international) == (191, 'P6/mmm')


def test_structure_node_records_its_source_and_charges():
    structure = li3n_structure((2, 2, 1))
    assert structure.get_formula() == 'Li12N4'
    assert 'Rabenau' in structure.base.attributes.get('mlffdiff_source')
    assert '2x2x1 supercell' in structure.base.attributes.get('mlffdiff_source')
    assert structure.base.attributes.get('mlffdiff_formal_charges') == {'Li': 1.0, 'N': -3.0}
    atoms = structure.get_ase()
    energy = ewald_energy(atoms.cell[:], atoms.positions, [LI3N_CHARGES[s] for s in atoms.get_chemical_symbols()])
    assert energy < 0  # an ionic crystal of the formal charges binds


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        ({'supercell': (0, 1, 1)}, 'three positive integers'),
        ({'supercell': (2, 2)}, 'three positive integers'),
        ({'a_A': 36.48}, 'between 3 and 4.5'),
        ({'c_A': True}, 'between 3 and 4.5'),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        li3n(**arguments)
