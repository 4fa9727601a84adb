"""The LAMMPS script writer of the DeePMD ensemble path (pure functions, no LAMMPS needed)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from aiida_mlffdiff.calculations.lammps_script import (
    DUMP_FILE,
    EQUILIBRATION_FILE,
    MAX_SEED,
    THERMO_FILE,
    lammps_data,
    lammps_script,
    lammps_seed,
    thermostat_commands,
    type_order,
)
from aiida_mlffdiff.calculations.md_ensemble import md_parameters

SYMBOLS = ['Li', 'Li', 'P', 'S', 'S', 'Cl']


def parameters(**overrides) -> dict:
    raw = {'temperature_K': 600.0, 'production_ps': 2.0, 'equilibration_ps': 0.5, 'sampling_interval_fs': 20.0}
    raw.update(overrides)
    return md_parameters({**raw, 'engine': 'lammps'}, SYMBOLS, calcjob=False)


def commands(script: str) -> list[str]:
    return [line for line in script.splitlines() if line and not line.startswith('#')]


def test_type_order_is_the_model_order():
    assert type_order(['Li', 'P', 'S', 'Cl'], SYMBOLS) == ['Li', 'P', 'S', 'Cl']
    assert type_order(['Cl', 'Li', 'O', 'P', 'S'], SYMBOLS) == ['Cl', 'Li', 'O', 'P', 'S']
    with pytest.raises(ValueError, match='does not cover Cl'):
        type_order(['Li', 'P', 'S'], SYMBOLS)


def test_script_langevin_default():
    script = lammps_script(parameters(), ['Cl', 'Li', 'P', 'S'], seed=7)
    lines = commands(script)
    assert lines[:2] == ['units metal', 'atom_style atomic']
    assert 'read_data structure.data' in lines
    assert 'pair_style deepmd model.pth' in lines
    assert 'pair_coeff * * Cl Li P S' in lines
    assert 'timestep 0.001' in lines  # ps
    assert f'velocity all create 600 {lammps_seed(7)} dist gaussian mom yes rot no' in lines
    # friction 0.001/fs → damping time 1 ps; fix nve integrates
    assert f'fix thermostat all langevin 600 600 1 {lammps_seed(7, 1)} zero yes' in lines
    assert 'fix integrate all nve' in lines
    # equilibration 0.5 ps = 500 steps, production 2 ps = 2000 steps, a frame every 20 steps
    runs = [line for line in lines if line.startswith('run ')]
    assert runs == ['run 500', 'run 2000']
    dump = next(line for line in lines if line.startswith('dump frames'))
    assert dump == f'dump frames all custom 20 {DUMP_FILE} id type xu yu zu vx vy vz fx fy fz'
    assert lines.index('reset_timestep 0') < lines.index(dump) < lines.index('run 2000')
    assert lines.index('run 500') < lines.index('reset_timestep 0')
    assert lines.index('info memory') > lines.index('run 2000')  # the peak memory, after the production
    assert any(line.startswith('fix production all print 20') and THERMO_FILE in line for line in lines)
    assert any(line.startswith('fix equilibration all print 20') and EQUILIBRATION_FILE in line for line in lines)
    assert 'thermo 20' in lines


def test_script_without_equilibration():
    lines = commands(lammps_script(parameters(equilibration_ps=0.0), ['Li', 'P', 'S', 'Cl'], seed=0))
    assert [line for line in lines if line.startswith('run ')] == ['run 2000']
    assert not any(EQUILIBRATION_FILE in line for line in lines)


@pytest.mark.parametrize(
    ('thermostat', 'coupling', 'expected'),
    [
        ('langevin', 0.002, ['fix thermostat all langevin 300 300 0.5 4 zero yes', 'fix integrate all nve']),
        ('nose_hoover', 100.0, ['fix thermostat all nvt temp 300 300 0.1']),
        ('bussi', 50.0, ['fix integrate all nve', 'fix thermostat all temp/csvr 300 300 0.05 4']),
    ],
)
def test_thermostats(thermostat, coupling, expected):
    assert thermostat_commands(thermostat, 300.0, coupling, seed=1) == expected


def test_thermostat_default_couplings_and_timestep():
    """The defaults of md_parameters map to LAMMPS' time units (ps)."""
    script = lammps_script(parameters(thermostat='nose_hoover', timestep_fs=2.0), ['Li', 'P', 'S', 'Cl'], seed=0)
    assert 'fix thermostat all nvt temp 600 600 0.1' in script
    assert 'timestep 0.002' in script
    assert re.search(r'^run 250$', script, re.MULTILINE)  # 0.5 ps / 2 fs
    with pytest.raises(ValueError, match='unknown thermostat'):
        thermostat_commands('berendsen', 300.0, 100.0, 0)


def test_seeds_are_valid_and_distinct():
    seeds = [lammps_seed(s, offset) for s in (0, 1, 2, 10**12) for offset in (0, 1)]
    assert all(1 <= seed <= MAX_SEED for seed in seeds)
    assert len(set(seeds)) == len(seeds)
    a = lammps_script(parameters(), ['Li', 'P', 'S', 'Cl'], seed=3)
    b = lammps_script(parameters(), ['Li', 'P', 'S', 'Cl'], seed=4)
    assert a != b
    assert a == lammps_script(parameters(), ['Li', 'P', 'S', 'Cl'], seed=3)


def test_data_file_types_and_masses():
    from ase import Atoms

    atoms = Atoms(SYMBOLS, positions=np.arange(18).reshape(6, 3) * 0.5, cell=[[8, 0, 0], [1, 8, 0], [0.5, 0.3, 8]])
    atoms.pbc = True
    text = lammps_data(atoms, ['Cl', 'Li', 'O', 'P', 'S'])
    assert '6 atoms' in text
    assert '5 atom types' in text
    assert 'xy xz yz' in text  # triclinic
    masses = text.split('Masses')[1].split('Atoms')[0].split()
    assert masses[0] == '1'
    assert float(masses[1]) == pytest.approx(35.45, abs=0.01)
    assert masses[3] == 'Cl'
    rows = text.split('Atoms # atomic')[1].split('\n')
    types = [int(row.split()[1]) for row in rows if row.strip()]
    assert types == [2, 2, 4, 5, 5, 1]
