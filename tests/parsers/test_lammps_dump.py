"""Reading LAMMPS replicas' files into the MD ensemble outputs: synthetic dumps, no LAMMPS needed."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm

from aiida_mlffdiff.calculations.lammps_script import DUMP_FILE, EQUILIBRATION_FILE, THERMO_FILE
from aiida_mlffdiff.calculations.md_ensemble import md_parameters
from aiida_mlffdiff.parsers.lammps_dump import (
    LAMMPS_STDOUT,
    lammps_run_stats,
    read_lammps_dump,
    read_thermo_file,
    replica_from_files,
)
from aiida_mlffdiff.workchains.lammps_ensemble import msd_from_lammps_dumps

STDOUT = """LAMMPS (22 Jul 2025 - Update 2)
Loop time of 0.5 on 1 procs for 100 steps with 12 atoms
Loop time of 1.5 on 1 procs for 200 steps with 12 atoms
Total wall time: 0:00:02
"""
RAW = {
    'temperature_K': 300.0,
    'timestep_fs': 1.0,
    'equilibration_ps': 0.02,
    'production_ps': 0.1,
    'sampling_interval_fs': 10.0,
    'n_replicas': 2,
}


@pytest.fixture
def cell():
    from tests.conftest import lj_configuration

    return lj_configuration(np.random.default_rng(0), 'sc-3x2x2')


def fake_files(atoms, seed: int, frames: int = 11, blow: dict | None = None) -> dict[str, str]:
    """A replica's files: Li random-walking, framework rattling, T ≈ 300 K; ``blow`` = {frame: kind}."""
    rng = np.random.default_rng(seed)
    n = len(atoms)
    positions = atoms.positions.copy()
    is_li = np.array(atoms.get_chemical_symbols()) == 'Li'
    velocities = rng.normal(0, 1, (n, 3))
    velocities *= np.sqrt(3 * n * 8.617e-5 * 300 / (np.sum(atoms.get_masses()[:, None] * velocities**2) * 1.0364e-4))
    dump, thermo = [], ['# step temperature_K pe_eV ke_eV conserved_eV']
    for frame in range(frames):
        if frame:
            positions[is_li] += rng.normal(0, 0.1, (is_li.sum(), 3))
            positions[~is_li] += rng.normal(0, 0.01, ((~is_li).sum(), 3))
        current = positions.copy()
        temperature = 300.0 + rng.normal(0, 10)
        kind = (blow or {}).get(frame)
        if kind == 'nan':
            current[0, 0] = np.nan
        if kind == 'close':
            current[1] = current[0] + 0.2
        if kind == 'hot':
            velocities *= 3
            temperature = 2000.0
        forces = rng.normal(0, 0.5, (n, 3))
        dump += ['ITEM: TIMESTEP', str(frame * 10), 'ITEM: NUMBER OF ATOMS', str(n), 'ITEM: BOX BOUNDS pp pp pp']
        dump += ['0 10', '0 10', '0 10', 'ITEM: ATOMS id type xu yu zu vx vy vz fx fy fz']
        for i in reversed(range(n)):  # unsorted on purpose
            values = [*current[i], *velocities[i], *forces[i]]
            dump.append(f'{i + 1} 1 ' + ' '.join(f'{v:.10g}' for v in values))
        thermo.append(f'{frame * 10} {temperature} {-10.0 + 0.001 * frame} 0.4 {-9.6 + 0.0001 * frame}')
    equilibration = ['# step temperature_K pe_eV ke_eV conserved_eV', '0 300 -10 0.4 -9.6', '10 310 -10 0.4 -9.6']
    return {
        DUMP_FILE: '\n'.join(dump) + '\n',
        THERMO_FILE: '\n'.join(thermo) + '\n',
        EQUILIBRATION_FILE: '\n'.join(equilibration) + '\n',
        LAMMPS_STDOUT: STDOUT,
    }


def test_read_dump_sorts_and_drops_a_cut_frame(cell):
    text = fake_files(cell, 0, frames=3)[DUMP_FILE]
    steps, values = read_lammps_dump(text)
    assert steps.tolist() == [0, 10, 20]
    assert values.shape == (3, 12, 11)
    assert values[0, :, 0].tolist() == list(range(1, 13))
    np.testing.assert_allclose(values[0, :, 2:5], cell.positions, atol=1e-8)
    cut = text[: text.rindex('ITEM: ATOMS') + 200]
    steps, values = read_lammps_dump(cut)
    assert steps.tolist() == [0, 10]
    with pytest.raises(ValueError, match='dump columns'):
        read_lammps_dump(text.replace('xu yu zu', 'x y z'))
    assert read_lammps_dump('')[1].shape[0] == 0


def test_thermo_and_stdout():
    rows = read_thermo_file('# title\n0 300 -1 0.1 -0.9\n10 nan nan 0.1 nan\nbad line\n')
    assert rows.shape == (2, 5)
    assert np.isnan(rows[1, 1])
    stats = lammps_run_stats(STDOUT + 'ERROR: Lost atoms: original 12 current 11 (src/thermo.cpp:494)\n')
    assert stats['version'] == '22 Jul 2025 - Update 2'
    assert stats['loop_s'] == 2.0
    assert stats['steps'] == 300
    assert stats['atoms'] == 12
    assert stats['error'].startswith('ERROR: Lost atoms')
    assert stats['peak_rss_MB'] is None  # no `info memory` in that output
    memory = 'Memory allocation information (MPI rank 0):\n\nMaximum resident set size: 623.7 Mbyte\n'
    assert lammps_run_stats(STDOUT + memory)['peak_rss_MB'] == 623.7


@pytest.mark.parametrize(
    ('blow', 'status', 'done'),
    [
        (None, 'ok', 11),
        ({4: 'nan'}, 'nan', 4),
        ({3: 'close'}, 'atoms_too_close', 3),
        ({6: 'hot'}, 'temperature_runaway', 6),
    ],
)
def test_replica_checks(cell, blow, status, done):
    parameters = md_parameters({**RAW, 'engine': 'lammps'}, cell.get_chemical_symbols(), calcjob=False)
    result = replica_from_files(fake_files(cell, 1, blow=blow), cell, parameters, seed=1)
    assert result['status'] == status, result['message']
    assert result['n_frames_done'] == done
    assert np.isfinite(result['positions'][:done]).all()
    assert np.isnan(result['positions'][done:]).all()
    np.testing.assert_allclose(result['com'][0], 0.0)
    if status == 'ok':
        assert 250 < result['temperature_mean_K'] < 350
        assert result['energy_drift_eV_atom_ps'] == pytest.approx(0.0001 / 12 / 0.01, rel=1e-6)
    else:
        assert f'production frame {done}' in result['message']


def test_replica_stopped_early_and_hot_equilibration(cell):
    parameters = md_parameters({**RAW, 'engine': 'lammps'}, cell.get_chemical_symbols(), calcjob=False)
    files = fake_files(cell, 1, frames=5)
    files[LAMMPS_STDOUT] += 'ERROR: Lost atoms: original 12 current 11\n'
    result = replica_from_files(files, cell, parameters, seed=1, job_message='exit 309')
    assert result['status'] == 'error'
    assert 'after 5 of 11 production frames: ERROR: Lost atoms' in result['message']

    files = fake_files(cell, 1)
    files[EQUILIBRATION_FILE] += '20 5000 -10 3 -7\n'
    result = replica_from_files(files, cell, parameters, seed=1)
    assert result['status'] == 'temperature_runaway'
    assert result['message'].startswith('equilibration step 20')
    assert result['n_frames_done'] == 0


def test_msd_from_lammps_dumps_outputs(cell):
    """The calcfunction gives MdEnsembleCalculation's outputs; a blown-up replica is excluded, not averaged in."""
    structure = orm.StructureData(ase=cell).store()
    folders, jobs = {}, {}
    for index, blow in enumerate([None, {5: 'close'}, None]):
        folder = orm.FolderData()
        for name, content in fake_files(cell, index, blow=blow).items():
            folder.base.repository.put_object_from_bytes(content.encode(), name)
        folders[f'replica_{index}'] = folder.store()
        jobs[f'replica_{index}'] = {'pk': 100 + index, 'seed': 7 + index, 'exit_status': 0, 'exit_message': ''}
    jobs['replica_3'] = {'pk': 103, 'seed': 10, 'exit_status': 110, 'exit_message': 'out of memory'}
    parameters = orm.Dict({**RAW, 'n_replicas': 4, 'seed': 7, 'engine': 'lammps'})
    outputs = msd_from_lammps_dumps(structure, parameters, orm.Dict(jobs), **folders)
    thermo = outputs['thermo'].get_dict()
    assert thermo['n_replicas'] == 4
    assert thermo['excluded'] == [1, 3]
    assert [r['status'] for r in thermo['replicas']] == ['ok', 'atoms_too_close', 'ok', 'error']
    assert 'out of memory' in thermo['replicas'][3]['message']
    assert [r['seed'] for r in thermo['replicas']] == [7, 8, 9, 10]
    msd = outputs['msd']
    assert msd.get_array('msd_A2').shape == (2, 11)
    assert msd.species == 'Li'
    assert msd.n_ions == 6
    assert msd.volume_A3 == pytest.approx(cell.get_volume())
    assert np.isfinite(msd.get_array('msd_A2')).all()
    info = outputs['run_info'].get_dict()
    assert info['lammps_version'] == '22 Jul 2025 - Update 2'
    assert info['atom_steps'] == 3 * 300 * 12


@pytest.mark.parametrize('n_atoms', [30, 250])
def test_closest_pair_equals_the_neighbour_list(n_atoms):
    """The drivers' closest-pair check (dense numpy for small cells) equals ASE's neighbour list, triclinic cells."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    from aiida_mlffdiff.drivers.md_core import closest_pair_A

    rng = np.random.default_rng(n_atoms)
    scale = (n_atoms / 30) ** (1 / 3)
    cell = np.array([[7.0, 0.0, 0.0], [2.5, 6.5, 0.0], [-1.5, 2.0, 8.0]]) * scale
    for trial in range(20):
        positions = rng.random((n_atoms, 3)) @ cell
        if trial % 2:  # a close pair across the periodic boundary
            positions[1] = positions[0] + cell[0] * (1 - 1e-9) + rng.normal(scale=0.2, size=3)
        atoms = Atoms(positions=positions, cell=cell, pbc=True)
        for cutoff in (0.5, 1.2):
            distances = neighbor_list('d', atoms, cutoff)
            expected = distances.min() if distances.size else None
            got = closest_pair_A(positions, cell, cutoff)
            assert (got is None) == (expected is None)
            if expected is not None:
                assert got == pytest.approx(expected, abs=1e-9)


def test_exact_state_check_recomputes_exactly_when_the_atoms_change():
    """The ASE driver's cheap check_state: changes named like ASE's, and an MD run identical to ASE's own check."""
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    # the driver script puts its own folder on sys.path to import its siblings (md_core, evaluate_model)
    from aiida_mlffdiff.drivers.md_ensemble import exact_state_check

    atoms = bulk('Cu', cubic=True).repeat((2, 2, 2))
    calc = EMT()
    check = exact_state_check(calc)
    assert set(check(atoms)) >= {'positions', 'numbers', 'cell', 'pbc'}  # nothing computed yet
    calc.get_forces(atoms)
    assert check(atoms.copy()) == []
    moved = atoms.copy()
    moved.positions[3, 0] += 1e-12
    assert check(moved) == ['positions']
    strained = atoms.copy()
    strained.set_cell(atoms.cell * 1.01)
    assert check(strained) == ['cell']
    charged = atoms.copy()
    charged.set_initial_charges([0.1] * len(atoms))
    assert len(check(charged)) > 2  # an array ASE's check knows, absent before: every change

    def trajectory(exact: bool) -> np.ndarray:
        replica = atoms.copy()
        replica.calc = EMT()
        if exact:
            replica.calc.check_state = exact_state_check(replica.calc)
        rng = np.random.default_rng(3)
        MaxwellBoltzmannDistribution(replica, temperature_K=600.0, rng=rng)
        Langevin(replica, 2.0 * units.fs, temperature_K=600.0, friction=0.01 / units.fs, rng=rng).run(30)
        return replica.positions.copy()

    np.testing.assert_array_equal(trajectory(True), trajectory(False))


@pytest.mark.parametrize('thermostat', ['langevin', 'bussi', 'nose_hoover'])
def test_lean_run_gives_the_trajectory_of_ase_run(thermostat):
    """The ASE driver's stepping loop: bit for bit ASE's ``run`` (with FixCom for Langevin), in fewer force queries."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    # the driver script puts its own folder on sys.path to import its siblings (md_core, evaluate_model)
    from aiida_mlffdiff.drivers.md_ensemble import langevin_fixcom_step, lean_run, make_dynamics

    config = {'timestep_fs': 2.0, 'temperature_K': 600.0, 'thermostat': thermostat, 'coupling': None}

    def trajectory(lean: bool) -> tuple[np.ndarray, np.ndarray, int]:
        replica = bulk('Cu', cubic=True).repeat((2, 2, 2))
        replica.calc = EMT()
        calls = {'n': 0}
        original = replica.calc.calculate

        def counted(*args, **kwargs):
            calls['n'] += 1
            return original(*args, **kwargs)

        replica.calc.calculate = counted
        rng = np.random.default_rng(3)
        replica.set_velocities(rng.normal(0.0, 0.02, (len(replica), 3)))
        dynamics = make_dynamics(replica, config, rng)
        # Langevin (with FixCom) takes the driver's own step, the other thermostats ASE's
        assert (langevin_fixcom_step(dynamics) is not None) == (thermostat == 'langevin')
        run = lean_run(dynamics, fast=True) if lean else dynamics.run
        for _ in range(4):
            run(5)
            # between runs the driver reads the cached energy and forces: served without a model call
            replica.get_potential_energy(), replica.get_forces()
        return replica.positions.copy(), replica.get_momenta(), calls['n'], dynamics.nsteps

    lean, plain = trajectory(True), trajectory(False)
    np.testing.assert_array_equal(lean[0], plain[0])
    np.testing.assert_array_equal(lean[1], plain[1])
    assert lean[2] == plain[2] <= 21, 'one model call per step (plus the first)'
    assert lean[3] == plain[3] == 20


def test_langevin_fixcom_step_only_for_the_drivers_langevin():
    """The driver's own Langevin step stands in for ASE's only where it is ASE's arithmetic: FixCom, no fixcm."""
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.constraints import FixAtoms, FixCom
    from ase.md.langevin import Langevin

    # the driver script puts its own folder on sys.path to import its siblings (md_core, evaluate_model)
    from aiida_mlffdiff.drivers.md_ensemble import langevin_fixcom_step

    def dynamics(constraints, fixcm=False):
        atoms = bulk('Cu', cubic=True)
        atoms.calc = EMT()
        atoms.set_constraint(constraints)
        return Langevin(atoms, units.fs, temperature_K=300.0, friction=0.01 / units.fs, fixcm=fixcm)

    assert langevin_fixcom_step(dynamics([FixCom()])) is not None
    assert langevin_fixcom_step(dynamics([])) is None
    assert langevin_fixcom_step(dynamics([FixCom(), FixAtoms(indices=[0])])) is None
    with pytest.warns(FutureWarning):
        assert langevin_fixcom_step(dynamics([FixCom()], fixcm=True)) is None


def test_model_forces_keeps_the_cache_for_a_calculator_that_does_not_copy_the_atoms():
    """The driver's direct model call: later queries at the same positions are served from the cache."""
    from ase.build import bulk
    from ase.calculators.calculator import Calculator
    from ase.calculators.emt import EMT

    # the driver script puts its own folder on sys.path to import its siblings (md_core, evaluate_model)
    from aiida_mlffdiff.drivers.md_ensemble import exact_state_check, model_forces

    class Forgetful(Calculator):
        """EMT's numbers from a ``calculate`` that never sets ``self.atoms`` (ASE's base class would)."""

        implemented_properties = ('energy', 'free_energy', 'forces')
        calls = 0

        def calculate(self, atoms=None, properties=('energy',), system_changes=()):
            Forgetful.calls += 1
            reference = atoms.copy()
            reference.calc = EMT()
            self.results = {'energy': reference.get_potential_energy(), 'forces': reference.get_forces()}
            self.results['free_energy'] = self.results['energy']

    atoms = bulk('Cu', cubic=True).repeat((2, 1, 1))
    atoms.calc = Forgetful()
    atoms.calc.check_state = exact_state_check(atoms.calc)
    atoms.positions[0] += 0.05
    forces = model_forces(atoms)
    assert Forgetful.calls == 1
    np.testing.assert_array_equal(atoms.get_forces(), forces)
    assert atoms.get_potential_energy() == atoms.calc.results['energy']
    assert Forgetful.calls == 1, 'served from the cache'
    atoms.positions[1] += 0.05
    atoms.get_forces()
    assert Forgetful.calls == 2, 'a move recomputes'
