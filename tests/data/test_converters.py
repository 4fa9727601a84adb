"""Engine training-data formats: exact extxyz (MACE, NequIP) and DeePMD npy systems, without AiiDA."""

import io

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.io import read, write

from aiida_mlffdiff.data.converters import (
    TrainingSetError,
    extxyz_text,
    read_deepmd,
    read_extxyz,
    reference_of,
    stress_3x3,
    write_deepmd,
    write_extxyz,
)

from ..conftest import LJ_CUTOFF_A, LJ_EPSILON_EV, LJ_SIGMA_A

TYPE_MAP = ['Li', 'P', 'S', 'Cl']


def test_stress_forms_agree():
    full = np.array([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]])
    np.testing.assert_array_equal(stress_3x3([1, 2, 3, 4, 5, 6]), full)  # Voigt xx yy zz yz xz xy
    np.testing.assert_array_equal(stress_3x3(full.reshape(9)), full)
    with pytest.raises(TrainingSetError, match='6 \\(Voigt\\), 9 or 3x3'):
        stress_3x3([1.0, 2.0, 3.0])


def test_extxyz_is_exact_and_readable_by_ase(lj_configurations, tmp_path):
    configurations = lj_configurations(n=6, seed=3)
    path = write_extxyz(configurations, tmp_path / 'train.extxyz')
    frames = read(path, index=':', format='extxyz')
    assert len(frames) == 6
    for original, frame in zip(configurations, frames, strict=True):
        # ASE's own writer would round positions and forces to 1e-8: ours keeps every bit
        np.testing.assert_array_equal(frame.positions, original.positions)
        np.testing.assert_array_equal(frame.cell[:], original.cell[:])
        np.testing.assert_array_equal(frame.arrays['REF_forces'], original.get_forces())
        assert frame.info['REF_energy'] == original.get_potential_energy()
        np.testing.assert_array_equal(frame.info['REF_stress'], stress_3x3(original.get_stress()).reshape(9))
        assert frame.info['config_type'] == original.info['config_type']
        assert frame.pbc.all()
    assert extxyz_text(configurations) == path.read_text()  # canonical: same input, same bytes


def test_extxyz_keys_for_the_engines(lj_configurations, tmp_path):
    configurations = lj_configurations(n=3, seed=4)
    path = write_extxyz(configurations, tmp_path / 'ase.extxyz', 'energy', 'forces', 'stress')
    frames = read(path, index=':', format='extxyz')
    for original, frame in zip(configurations, frames, strict=True):
        # ASE turns the standard keys into calculator results
        assert frame.get_potential_energy() == original.get_potential_energy()
        np.testing.assert_array_equal(frame.get_forces(), original.get_forces())
        np.testing.assert_allclose(frame.get_stress(), original.get_stress(), rtol=0, atol=1e-15)
    custom = write_extxyz(configurations, tmp_path / 'dft.extxyz', 'dft_energy', 'dft_forces', 'dft_stress')
    back = read_extxyz(custom, 'dft_energy', 'dft_forces', 'dft_stress')
    assert extxyz_text(back) == extxyz_text(configurations)
    with pytest.raises(TrainingSetError, match='invalid extxyz key'):
        write_extxyz(configurations, tmp_path / 'bad.extxyz', energy_key='my energy')


def test_reference_prefers_explicit_labels(lj_configurations):
    atoms = lj_configurations(n=1, seed=5)[0]
    atoms.info['REF_energy'] = -1.25
    assert reference_of(atoms).energy_eV == -1.25
    del atoms.info['REF_energy']
    assert reference_of(atoms).energy_eV == atoms.get_potential_energy()


def deepmd_layout(configurations, directory):
    systems = write_deepmd(configurations, directory, TYPE_MAP)
    return {system.name: system for system in systems}


def test_deepmd_layout(lj_configurations, tmp_path):
    configurations = lj_configurations(n=7, seed=6)  # templates cycle: 3 × 8 atoms, 2 × 12, 2 × 16
    systems = deepmd_layout(configurations, tmp_path / 'deepmd')
    assert sorted(systems) == ['Li4P1S2Cl1', 'Li6P1S4Cl1', 'Li8P1S5Cl2']
    frames = {'Li4P1S2Cl1': (3, 8), 'Li6P1S4Cl1': (2, 12), 'Li8P1S5Cl2': (2, 16)}
    for name, (n_frames, n_atoms) in frames.items():
        system = systems[name]
        types = np.loadtxt(system / 'type.raw', dtype=int)
        assert types.shape == (n_atoms,)
        assert np.all(np.diff(types) >= 0), 'atoms must be grouped by type'
        assert (system / 'type_map.raw').read_text().split() == TYPE_MAP
        data = {
            key: np.load(system / 'set.000' / f'{key}.npy') for key in ('coord', 'box', 'energy', 'force', 'virial')
        }
        assert data['coord'].shape == (n_frames, n_atoms * 3)
        assert data['box'].shape == (n_frames, 9)
        assert data['energy'].shape == (n_frames,)
        assert data['force'].shape == (n_frames, n_atoms * 3)
        assert data['virial'].shape == (n_frames, 9)


def test_deepmd_reorders_coordinates_and_forces_together(lj_configurations, tmp_path):
    configurations = lj_configurations(n=3, seed=7)[:1] + lj_configurations(n=3, seed=8)[:1]  # two 8-atom frames
    (system,) = write_deepmd(configurations, tmp_path, TYPE_MAP)
    types = np.loadtxt(system / 'type.raw', dtype=int)
    coords = np.load(system / 'set.000' / 'coord.npy').reshape(2, -1, 3)
    forces = np.load(system / 'set.000' / 'force.npy').reshape(2, -1, 3)
    energies = np.load(system / 'set.000' / 'energy.npy')
    for frame, atoms in enumerate(configurations):
        assert atoms.get_chemical_symbols() != [TYPE_MAP[t] for t in types]  # the order did change
        assert energies[frame] == atoms.get_potential_energy()
        for t, symbol in enumerate(TYPE_MAP):
            mine = np.array(atoms.get_chemical_symbols()) == symbol
            # atoms of one type keep their relative order; each force travels with its atom
            np.testing.assert_array_equal(coords[frame][types == t], atoms.positions[mine])
            np.testing.assert_array_equal(forces[frame][types == t], atoms.get_forces()[mine])


def test_deepmd_virial_is_minus_strain_derivative_of_energy(lj_configurations, tmp_path):
    atoms = lj_configurations(n=1, seed=9)[0]
    atoms.set_cell(atoms.cell[:] * 0.85, scale_atoms=True)  # compressed: LJ repulsion dominates
    atoms.calc = LennardJones(sigma=LJ_SIGMA_A, epsilon=LJ_EPSILON_EV, rc=LJ_CUTOFF_A)
    stress = atoms.get_stress(voigt=False)
    (system,) = write_deepmd([atoms], tmp_path, TYPE_MAP)
    virial = np.load(system / 'set.000' / 'virial.npy').reshape(3, 3)
    assert np.all(np.diag(stress) < 0)  # compressed: ASE's stress is negative ...
    assert np.all(np.diag(virial) > 0)  # ... and DeePMD's virial positive
    np.testing.assert_allclose(virial, -stress * atoms.get_volume(), rtol=1e-12)
    # independent of any sign convention: W_ii = -dE/dε_ii, by finite differences of the energy
    step = 1e-5
    for axis in range(3):
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.calc = LennardJones(sigma=LJ_SIGMA_A, epsilon=LJ_EPSILON_EV, rc=LJ_CUTOFF_A)
            deformation = np.eye(3)
            deformation[axis, axis] += sign * step
            strained.set_cell(atoms.cell[:] @ deformation, scale_atoms=True)
            energies.append(strained.get_potential_energy())
        assert virial[axis, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * step), rel=1e-5)


def test_deepmd_round_trip(lj_configurations, tmp_path):
    configurations = lj_configurations(n=6, seed=10)
    write_deepmd(configurations, tmp_path, TYPE_MAP)
    back = read_deepmd(tmp_path, TYPE_MAP)
    assert len(back) == 6

    def key(atoms):  # the same configuration, whatever the atom order
        return round(atoms.get_potential_energy(), 12)

    originals = {key(atoms): atoms for atoms in configurations}
    for atoms in back:
        original = originals[key(atoms)]
        order = np.argsort([TYPE_MAP.index(s) for s in original.get_chemical_symbols()], kind='stable')
        np.testing.assert_array_equal(atoms.get_chemical_symbols(), np.array(original.get_chemical_symbols())[order])
        np.testing.assert_allclose(atoms.positions, original.positions[order], rtol=0, atol=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), original.get_forces()[order], rtol=0, atol=1e-12)
        np.testing.assert_allclose(atoms.get_stress(), original.get_stress(), rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(atoms.cell[:], original.cell[:], rtol=0, atol=1e-12)


def test_deepmd_without_stress_writes_no_virial(lj_configurations, tmp_path):
    atoms = lj_configurations(n=1, seed=11)[0]
    del atoms.calc.results['stress']
    (system,) = write_deepmd([atoms], tmp_path, TYPE_MAP)
    assert not (system / 'set.000' / 'virial.npy').exists()
    assert 'stress' not in read_deepmd(system, TYPE_MAP)[0].calc.results


def test_deepmd_refuses_species_outside_type_map(lj_configurations, tmp_path):
    with pytest.raises(TrainingSetError, match=r'contains Cl, not in the DeePMD type_map \[Li, P, S\]'):
        write_deepmd(lj_configurations(n=1), tmp_path, ['Li', 'P', 'S'])
    with pytest.raises(TrainingSetError, match='not chemical symbols'):
        write_deepmd(lj_configurations(n=1), tmp_path, ['Li', 'P', 'S', 'Chlorine'])


def test_deepmd_refuses_to_overwrite(lj_configurations, tmp_path):
    write_deepmd(lj_configurations(n=1), tmp_path, TYPE_MAP)
    with pytest.raises(TrainingSetError, match='exists already'):
        write_deepmd(lj_configurations(n=1), tmp_path, TYPE_MAP)


def test_plain_ase_extxyz_is_read(lj_configurations, tmp_path):
    configurations = lj_configurations(n=2, seed=12)
    write(tmp_path / 'plain.extxyz', configurations, format='extxyz')  # calculator results, 8 decimals
    back = read_extxyz(io.StringIO((tmp_path / 'plain.extxyz').read_text()))
    for original, atoms in zip(configurations, back, strict=True):
        assert atoms.info['REF_energy'] == pytest.approx(original.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(atoms.arrays['REF_forces'], original.get_forces(), rtol=0, atol=1e-8)
        np.testing.assert_allclose(atoms.get_stress(), original.get_stress(), rtol=0, atol=1e-12)
