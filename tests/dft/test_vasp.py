"""The VASP path (``aiida_mlffdiff.dft.vasp``): generated inputs, aiida-vasp's own parser on real outputs, checks.

VASP cannot run here. What is tested instead:

(a) the ``vasp.vasp`` workchain builder (INCAR tags per functional/protocol, k-point rule, structure and POTCAR
    mapping), and the INCAR/KPOINTS/POSCAR/POTCAR files that aiida-vasp's ``vasp.vasp`` CalcJob writes in a dry run,
    using a POTCAR family of *stub* POTCAR files (headers only, clearly marked, useless for VASP);
(b) the real VASP outputs in ``fixtures/vasp/single_point`` (In4As4, VASP 5.3.5) through aiida-vasp's own
    ``vasp.vasp`` parser (a CalcJobNode with that retrieved folder, as aiida-vasp's tests build it), then
    :func:`labels_from_outputs`, against ``ase.io.read`` of the same vasprun.xml and the raw XML values;
(c) the last ionic step of the relaxation in ``fixtures/vasp/relax`` (Si8, 19 steps, VASP 5.4.1);
(d) the validation errors;
(e) end to end: the built workchain run with a stand-in executable (a test stub) that returns the real outputs of (b).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import ase.io
import numpy as np
import pytest
from aiida import orm
from ase.build import bulk
from ase.units import GPa

from aiida_mlffdiff.dft import DftOutputError, Labels, get_dft_engine
from aiida_mlffdiff.dft import vasp as engine
from aiida_mlffdiff.protocols import merge

FIXTURES = Path(__file__).parent / 'fixtures' / 'vasp'
FAMILY = 'mlffdiff-test-stub-potcars'
#: POTCAR names of the stub family (directory name = symbol, as in VASP's PAW release).
STUB_SYMBOLS = ('Li_sv', 'P', 'S', 'Cl', 'Si', 'In_d', 'As')

#: A stub POTCAR: only the header fields that aiida-vasp/parsevasp read (TITEL, VRHFIN, LEXCH, ...). NOT A POTENTIAL.
STUB_POTCAR = """  PAW_PBE {symbol} 01Jan2000
   1.00000000000000
 TEST STUB written by aiida-mlffdiff's tests: not a VASP potential, unusable for any calculation.
 parameters from PSCTR are:
   VRHFIN ={element}: s1p1
   LEXCH  = PE
   EATOM  =   100.0000 eV,    7.3498 Ry

   TITEL  = PAW_PBE {symbol} 01Jan2000
   LULTRA =        F    use ultrasoft PP ?
   IUNSCR =        1    unscreen: 0-lin 1-nonlin 2-no
   RPACOR =    1.000    partial core radius
   POMASS =   10.000; ZVAL   =    {zval:.3f}    mass and valenz
   RCORE  =    1.000    outmost cutoff radius
   ENMAX  =  {enmax:.3f}; ENMIN  =  100.000 eV
   ICORE  =        1    local potential
   LCOR   =        T    correct aug charges
   LPAW   =        T    paw PP
   NDATA  =      100
END of PSCTR-controll parameters

 ... DATA ...

 End of Dataset
"""


# ----------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def potcar_family(aiida_profile, tmp_path):
    """A POTCAR family of stub POTCARs (Li_sv, P, S, Cl, Si, In_d, As) uploaded with aiida-vasp's own function."""
    from aiida_vasp.data.potcar import PotcarData

    if PotcarData.get_potcar_group(FAMILY) is None:
        root = tmp_path / 'stub_potcars'
        for index, symbol in enumerate(STUB_SYMBOLS):
            folder = root / symbol
            folder.mkdir(parents=True)
            text = STUB_POTCAR.format(symbol=symbol, element=symbol.split('_')[0], zval=index + 1, enmax=200 + index)
            (folder / 'POTCAR').write_text(text, encoding='utf-8')
        PotcarData.upload_potcar_family(str(root), FAMILY, 'TEST STUBS: header-only POTCARs, not usable by VASP')
    return FAMILY


@pytest.fixture
def vasp_code(aiida_localhost):
    """A stored VASP InstalledCode on the test localhost (the executable does not exist: nothing runs)."""
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_code('vasp-test@localhost')
    except NotExistent:
        code = orm.InstalledCode(
            computer=aiida_localhost, filepath_executable='/usr/local/bin/vasp_std', default_calc_job_plugin='vasp.vasp'
        )
        code.label = 'vasp-test'
        return code.store()


@pytest.fixture
def si_cell():
    """The 8-atom conventional diamond Si cell (a = 5.43 Å), slightly rattled, as a StructureData."""
    atoms = bulk('Si', 'diamond', a=5.43, cubic=True)
    atoms.rattle(0.02, seed=3)
    return orm.StructureData(ase=atoms)


def retrieved_calcjob(computer: orm.Computer, folder: Path, settings: dict, parameters: dict | None = None):
    """A stored ``vasp.vasp`` CalcJobNode with ``settings`` (and ``parameters``) inputs and ``folder`` as retrieved.

    Built the way aiida-vasp's own parser tests build it (``tests/parsers/conftest.py::calc_with_retrieved``).
    """
    from aiida.common.links import LinkType

    node = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:vasp.vasp')
    node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    node.set_option('max_wallclock_seconds', 1800)
    node.set_option('parser_name', 'vasp.vasp')
    inputs = {'settings': orm.Dict(settings)}
    if parameters is not None:
        inputs['parameters'] = orm.Dict(parameters)
    for label, data in inputs.items():
        node.base.links.add_incoming(data.store(), link_type=LinkType.INPUT_CALC, link_label=label)
    node.store()
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_tree(str(folder))
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
    retrieved.store()
    return node


def parse_with_aiida_vasp(
    computer: orm.Computer, folder: Path, settings: dict, parameters: dict | None = None, store: bool = False
):
    """Run aiida-vasp's ``vasp.vasp`` parser on ``folder``: (outputs, calcfunction node); ``store`` keeps them."""
    from aiida.plugins import ParserFactory

    node = retrieved_calcjob(computer, folder, settings, parameters)
    outputs, parse_node = ParserFactory('vasp.vasp').parse_from_node(node, store_provenance=store)
    return outputs, parse_node


def xml_final_block(path: Path, index: int = -1) -> dict[str, np.ndarray]:
    """Raw forces (eV/Å) and stress (kBar) of one <calculation> of a vasprun.xml, read directly from the XML."""
    calculation = ET.parse(path).getroot().findall('calculation')[index]

    def varray(name):
        block = calculation.find(f"varray[@name='{name}']")
        return np.array([[float(x) for x in v.text.split()] for v in block.findall('v')])

    return {'forces': varray('forces'), 'stress': varray('stress')}


# ------------------------------------------------------------------------------------------- (a) generated inputs
def test_interface_constants():
    """The module exposes the names of the common DFT-engine interface."""
    assert get_dft_engine('vasp') is engine
    assert engine.FUNCTIONALS == ('pbe', 'hse06')
    assert engine.PROTOCOLS == ('fast', 'moderate', 'precise')
    from aiida.plugins import WorkflowFactory

    assert engine.WORKCHAIN is WorkflowFactory('vasp.vasp')
    assert engine.CALCJOB_PLUGIN == 'vasp.vasp'
    assert engine.OUTPUT_PORTS == ('misc',)
    assert engine.ENGINE_INPUTS == ('potential_family', 'potential_mapping')


@pytest.mark.parametrize('protocol', ['fast', 'moderate', 'precise'])
def test_protocol_incar(protocol):
    """PBE and HSE06 share cut-off, smearing, convergence and k-spacing; HSE06 adds exactly the hybrid tags."""
    pbe = engine.get_protocol_inputs('pbe', protocol)
    hse = engine.get_protocol_inputs('hse06', protocol)
    expected_common = {
        'prec': 'Accurate',
        'lreal': False,
        'ismear': 0,
        'sigma': 0.05,
        'ibrion': -1,
        'nsw': 0,
        'isif': 2,
        'isym': 0,
        'gga': 'PE',
        'encut': {'fast': 400, 'moderate': 520, 'precise': 650}[protocol],
        'ediff': {'fast': 1e-5, 'moderate': 1e-6, 'precise': 1e-7}[protocol],
    }
    for incar in (pbe['parameters']['incar'], hse['parameters']['incar']):
        assert {key: incar[key] for key in expected_common} == expected_common
        assert all(key == key.lower() for key in incar)
    assert pbe['kpoints_spacing'] == hse['kpoints_spacing'] == {'fast': 0.5, 'moderate': 0.3, 'precise': 0.2}[protocol]
    pbe_incar, hse_incar = pbe['parameters']['incar'], hse['parameters']['incar']
    assert 'lhfcalc' not in pbe_incar
    assert pbe_incar['algo'] == 'Normal'
    hybrid = {key: value for key, value in hse_incar.items() if pbe_incar.get(key) != value}
    assert hybrid == {
        'lhfcalc': True,
        'hfscreen': 0.2,
        'aexx': 0.25,
        'algo': 'Damped',
        'time': 0.4,
        'precfock': 'Fast' if protocol == 'fast' else 'Normal',
    }
    parser = pbe['settings']['parser_settings']
    assert set(parser['required_quantity']) >= {'total_energies', 'forces', 'stress'}
    assert 'energy_extrapolated' in parser['energy_type']


def test_protocol_overrides_and_errors():
    """Overrides are merged recursively (upper-case INCAR keys are lowered); bad names are refused."""
    inputs = engine.get_protocol_inputs('pbe', 'fast', {'parameters': {'incar': {'NCORE': 4}}, 'kpoints_spacing': 0.4})
    assert inputs['parameters']['incar']['ncore'] == 4
    assert inputs['parameters']['incar']['encut'] == 400
    assert inputs['kpoints_spacing'] == 0.4
    with pytest.raises(ValueError, match='unknown functional'):
        engine.get_protocol_inputs('b3lyp')
    with pytest.raises(ValueError, match='unknown protocol'):
        engine.get_protocol_inputs('pbe', 'sloppy')


def test_kpoints_rule(si_cell):
    """Γ-centred mesh n_i = ceil(|b_i|/spacing), |b_i| with 2π: cubic Si (a = 5.43 Å, |b| = 1.157 Å⁻¹)."""
    assert engine.get_kpoints_mesh(si_cell, 0.5) == [3, 3, 3]
    assert engine.get_kpoints_mesh(si_cell, 0.3) == [4, 4, 4]
    assert engine.get_kpoints_mesh(si_cell, 0.2) == [6, 6, 6]
    assert engine.get_kpoints_mesh(si_cell, 10.0) == [1, 1, 1]
    # a 3 × 1 × 1 supercell gets a third of the divisions along the long axis, like aiida-core's density rule
    long = orm.StructureData(ase=bulk('Si', 'diamond', a=5.43, cubic=True).repeat((3, 1, 1)))
    assert engine.get_kpoints_mesh(long, 0.2) == [2, 6, 6]
    reference = orm.KpointsData()
    reference.set_cell_from_structure(long)
    reference.set_kpoints_mesh_from_density(0.2)
    assert reference.get_kpoints_mesh()[0] == [2, 6, 6]
    with pytest.raises(ValueError, match='spacing'):
        engine.get_kpoints_mesh(si_cell, 0.0)


@pytest.mark.parametrize('functional', ['pbe', 'hse06'])
def test_builder(functional, vasp_code, potcar_family, lpsc_cell):
    """The builder of the ``vasp.vasp`` workchain: INCAR, k-mesh, structure, POTCAR mapping, settings, options."""
    builder = engine.get_builder(
        vasp_code, lpsc_cell, functional, 'moderate', options={'max_wallclock_seconds': 600}, potential_family=FAMILY
    )
    assert builder.process_class is engine.WORKCHAIN
    incar = builder.parameters.get_dict()['incar']
    assert incar == engine.get_protocol_inputs(functional, 'moderate')['parameters']['incar']
    assert builder.structure.uuid == lpsc_cell.uuid
    mesh, offset = builder.kpoints.get_kpoints_mesh()
    assert mesh == engine.get_kpoints_mesh(lpsc_cell, 0.3)
    assert offset == [0.0, 0.0, 0.0]
    assert builder.potential_family.value == FAMILY
    assert builder.potential_mapping.get_dict() == {'Li': 'Li_sv', 'P': 'P', 'S': 'S', 'Cl': 'Cl'}
    assert builder.settings.get_dict() == engine.get_protocol()['default_inputs']['settings']
    options = builder.calc.metadata.options
    assert options['max_wallclock_seconds'] == 600
    assert options['resources'] == {'num_machines': 1}
    assert builder.max_iterations.value == 3
    assert builder.metadata.label == f'vasp-{functional}-moderate'
    # the inputs pass the workchain's own port validation (aiida-vasp's parameters massager included)
    assert engine.WORKCHAIN.spec().inputs.validate(builder._inputs(prune=True)) is None
    # the builder's ports do check (aiida-vasp's family validator raises as soon as a bad value is assigned)
    from aiida.common.exceptions import InputValidationError

    with pytest.raises(InputValidationError, match='not found'):
        builder.potential_family = orm.Str('no-such-family')


def test_builder_refuses_bad_input(vasp_code, potcar_family, lpsc_cell, aiida_localhost):
    """get_builder raises ValueError with the validation message; a code of another plugin is refused."""
    with pytest.raises(ValueError, match='unknown functional'):
        engine.get_builder(vasp_code, lpsc_cell, 'lda', potential_family=FAMILY)
    with pytest.raises(ValueError, match='does not exist'):
        engine.get_builder(vasp_code, lpsc_cell, 'pbe', potential_family='no-such-family')
    other = orm.InstalledCode(
        computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin='core.arithmetic.add'
    ).store()
    with pytest.raises(ValueError, match=re.escape("not 'vasp.vasp'")):
        engine.get_builder(other, lpsc_cell, 'pbe', potential_family=FAMILY)


def dry_run_files(builder, tmp_path: Path, monkeypatch) -> dict[str, str]:
    """Prepare the ``vasp.vasp`` CalcJob the workchain would launch, as a dry run: {file name: content}.

    Mirrors ``VaspWorkChain.init_inputs``: the ``incar`` namespace through aiida-vasp's ``ParametersMassage`` and
    the POTCARs from the family and mapping with ``PotcarData.get_potcars_from_structure``.
    """
    from aiida.engine import run_get_node
    from aiida_vasp.assistant.parameters import ParametersMassage
    from aiida_vasp.calcs.vasp import VaspCalculation
    from aiida_vasp.data.potcar import PotcarData

    massaged = ParametersMassage(builder.parameters.get_dict(), {}).parameters.incar
    inputs = {
        'code': builder.code,
        'structure': builder.structure,
        'parameters': orm.Dict(dict(massaged)),
        'kpoints': builder.kpoints,
        'settings': builder.settings,
        'potential': PotcarData.get_potcars_from_structure(
            structure=builder.structure,
            family_name=builder.potential_family.value,
            mapping=builder.potential_mapping.get_dict(),
        ),
        'metadata': {'options': dict(builder.calc.metadata.options), 'dry_run': True, 'store_provenance': False},
    }
    inputs['metadata']['options']['resources'] = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    monkeypatch.chdir(tmp_path)
    _, node = run_get_node(VaspCalculation, **inputs)
    folder = Path(node.dry_run_info['folder'])
    return {path.name: path.read_text() for path in folder.iterdir() if path.is_file()}


def parse_incar(text: str) -> dict[str, str]:
    """INCAR text → {TAG: raw value string}."""
    tags = {}
    for line in text.splitlines():
        line = line.split('#')[0].split('!')[0].strip()
        if '=' in line:
            key, value = line.split('=', 1)
            tags[key.strip().upper()] = value.strip()
    return tags


@pytest.mark.parametrize('functional', ['pbe', 'hse06'])
def test_dry_run_files(functional, vasp_code, potcar_family, lpsc_cell, tmp_path, monkeypatch):
    """The INCAR, KPOINTS, POSCAR and POTCAR that aiida-vasp's CalcJob writes for the Li-P-S-Cl cell."""
    builder = engine.get_builder(vasp_code, lpsc_cell, functional, 'fast', potential_family=FAMILY)
    files = dry_run_files(builder, tmp_path, monkeypatch)
    assert {'INCAR', 'KPOINTS', 'POSCAR', 'POTCAR'} <= set(files)

    incar = parse_incar(files['INCAR'])
    expected = {
        'GGA': 'PE',
        'PREC': 'Accurate',
        'ENCUT': '400',
        'ISMEAR': '0',
        'IBRION': '-1',
        'NSW': '0',
        'ISIF': '2',
        'ISYM': '0',
        'LREAL': '.FALSE.',
    }
    assert {key: incar.get(key) for key in expected} == expected
    assert float(incar['EDIFF']) == pytest.approx(1e-5)
    assert float(incar['SIGMA']) == pytest.approx(0.05)
    if functional == 'hse06':
        assert incar['LHFCALC'] == '.TRUE.'
        assert float(incar['HFSCREEN']) == pytest.approx(0.2)
        assert float(incar['AEXX']) == pytest.approx(0.25)
        assert float(incar['TIME']) == pytest.approx(0.4)
        assert incar['ALGO'].lower() == 'damped'
        assert incar['PRECFOCK'].lower() == 'fast'
    else:
        assert 'LHFCALC' not in incar
        assert incar['ALGO'].lower() == 'normal'

    kpoints = files['KPOINTS'].splitlines()
    assert kpoints[2].strip().lower().startswith('g')  # Γ-centred
    assert [int(n) for n in kpoints[3].split()] == engine.get_kpoints_mesh(lpsc_cell, 0.5)

    # POSCAR keeps the structure's site order: groups of consecutive equal species, POTCARs in the same order
    (tmp_path / 'POSCAR.written').write_text(files['POSCAR'])
    poscar = ase.io.read(tmp_path / 'POSCAR.written', format='vasp')
    atoms = lpsc_cell.get_ase()
    assert poscar.get_chemical_symbols() == atoms.get_chemical_symbols()
    np.testing.assert_allclose(poscar.cell[:], atoms.cell[:], atol=1e-8)
    np.testing.assert_allclose(poscar.positions, atoms.positions, atol=1e-7)
    groups = [
        symbol for i, symbol in enumerate(atoms.get_chemical_symbols()) if i == 0 or symbol != atoms[i - 1].symbol
    ]
    titles = [line.split('=')[1].split()[1] for line in files['POTCAR'].splitlines() if 'TITEL' in line]
    mapping = {'Li': 'Li_sv', 'P': 'P', 'S': 'S', 'Cl': 'Cl'}
    assert titles == [mapping[symbol] for symbol in groups]


# ------------------------------------------------------------------------------ (b) real outputs, aiida-vasp parser
def test_parser_single_point(aiida_localhost):
    """Real VASP outputs (In4As4) → aiida-vasp's parser → labels_from_outputs agrees with ASE and with the XML."""
    settings = engine.get_protocol()['default_inputs']['settings']
    folder = FIXTURES / 'single_point'
    outputs, parse_node = parse_with_aiida_vasp(aiida_localhost, folder, settings, {'ibrion': -1, 'nsw': 0}, True)
    assert parse_node.is_finished_ok, parse_node.exit_message
    assert 'structure' not in outputs  # a single point: aiida-vasp omits the (unchanged) structure
    # the stored node, as the collection step will receive it (arrays become nested lists in a stored Dict)
    stored = {port: orm.load_node(outputs[port].pk) for port in engine.OUTPUT_PORTS}
    labels = engine.labels_from_outputs(stored)
    assert isinstance(labels, Labels)

    reference = ase.io.read(folder / 'vasprun.xml', index=-1)
    assert reference.get_chemical_formula() == 'As4In4'
    assert labels.forces_eV_A.shape == (len(reference), 3) == (8, 3)
    # energy: VASP's energy(sigma->0) = -36.09616894 eV (ASE's potential energy; the free energy is -36.09677152)
    assert labels.energy_eV == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    assert labels.energy_eV == pytest.approx(-36.09616894, abs=1e-8)
    free = engine.labels_from_outputs(outputs, energy_type='energy_free')
    assert free.energy_eV == pytest.approx(reference.calc.results['free_energy'], abs=1e-8)
    np.testing.assert_allclose(labels.forces_eV_A, reference.get_forces(), atol=1e-8)
    # stress: -8.50955439 kBar on the diagonal in vasprun.xml (VASP sign) → +0.00531125 eV/Å³ (ASE sign, tensile)
    np.testing.assert_allclose(labels.stress_eV_A3, reference.get_stress(voigt=False), atol=1e-10)
    raw = xml_final_block(folder / 'vasprun.xml')
    np.testing.assert_allclose(labels.stress_eV_A3, -raw['stress'] * 0.1 * GPa, atol=1e-12)
    assert labels.stress_eV_A3[0, 0] == pytest.approx(8.50955439 * 0.1 / 160.21766208, rel=1e-6)
    assert labels.stress_eV_A3[0, 0] > 0


def test_single_point_into_training_set(aiida_localhost):
    """The parsed labels build a TrainingSet (the collection step) with VASP's units and ASE's stress sign."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_mlffdiff.data.training_set import TrainingSet

    folder = FIXTURES / 'single_point'
    outputs, _ = parse_with_aiida_vasp(aiida_localhost, folder, engine.get_protocol()['default_inputs']['settings'])
    labels = engine.labels_from_outputs(outputs)
    atoms = ase.io.read(folder / 'CONTCAR', format='vasp')
    atoms.calc = SinglePointCalculator(
        atoms, energy=labels.energy_eV, forces=labels.forces_eV_A, stress=labels.stress_eV_A3
    )
    training_set = TrainingSet.from_atoms([atoms], functional='pbe', engine='vasp', source='fixture')
    assert training_set.base.attributes.get('species') == ['As', 'In']
    assert training_set.base.attributes.get('has_stress') is True


FAKE_VASP = """#!/bin/bash
# TEST STUB standing in for VASP: checks that the four inputs exist, then returns real VASP outputs (a fixture).
set -e
for name in INCAR POSCAR POTCAR KPOINTS; do test -s "$name" || {{ echo "fake vasp: $name missing" >&2; exit 2; }}; done
cp "{folder}/vasprun.xml" "{folder}/OUTCAR" "{folder}/CONTCAR" .
cat "{folder}/vasp_output"
"""


def test_workchain_end_to_end(vasp_code, potcar_family, aiida_localhost, tmp_path):
    """The built ``vasp.vasp`` workchain runs (fake VASP returning the real In4As4 outputs) and yields the labels.

    The whole production path except VASP itself: builder → VaspWorkChain → VaspCalculation (inputs written,
    POTCARs from the family) → "VASP" → retrieve → aiida-vasp's parser → ``misc`` → :func:`labels_from_outputs`.
    """
    from aiida.engine import run_get_node

    folder = FIXTURES / 'single_point'
    script = tmp_path / 'fake_vasp.sh'
    script.write_text(FAKE_VASP.format(folder=folder.resolve()))
    script.chmod(0o755)
    fake = orm.InstalledCode(
        computer=aiida_localhost, filepath_executable=str(script), default_calc_job_plugin='vasp.vasp'
    ).store()
    structure = orm.StructureData(ase=ase.io.read(folder / 'CONTCAR', format='vasp'))
    options = {'withmpi': False, 'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}
    builder = engine.get_builder(fake, structure, 'pbe', 'fast', options=options, potential_family=FAMILY)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert set(engine.OUTPUT_PORTS) <= set(results)
    assert len(node.called) == 1  # no restart needed
    calcjob = node.called[0]
    assert calcjob.process_type == 'aiida.calculations:vasp.vasp'
    assert calcjob.inputs.parameters.get_dict()['ibrion'] == -1
    labels = engine.labels_from_outputs({port: node.outputs[port] for port in engine.OUTPUT_PORTS})
    reference = ase.io.read(folder / 'vasprun.xml', index=-1)
    assert labels.energy_eV == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(labels.forces_eV_A, reference.get_forces(), atol=1e-8)
    np.testing.assert_allclose(labels.stress_eV_A3, reference.get_stress(voigt=False), atol=1e-10)
    # the label node is linked to the CalcJob that created it (provenance for the training set)
    assert node.outputs.misc.creator.pk == calcjob.pk


# -------------------------------------------------------------------------------- (c) relaxation: last ionic step
def test_parser_relax_last_step(aiida_localhost):
    """Si8 relaxation (vasprun.xml only): misc holds the forces and stress of the last of the 19 ionic steps."""
    settings = merge(
        engine.get_protocol()['default_inputs']['settings'],
        # only vasprun.xml is shipped: no OUTCAR/vasp_output, hence no run_status to check
        {'parser_settings': {'check_completeness': False, 'critical_objects': ['vasprun.xml'], 'check_errors': False}},
    )
    settings['parser_settings']['required_quantity'] = ['total_energies', 'forces', 'stress']
    path = FIXTURES / 'relax' / 'vasprun.xml'
    folder = FIXTURES / 'relax'
    outputs, parse_node = parse_with_aiida_vasp(aiida_localhost, folder, settings)
    assert parse_node.is_finished_ok, parse_node.exit_message
    labels = engine.labels_from_outputs(outputs)

    frames = ase.io.read(path, index=':')
    assert len(frames) == 19
    last, first = frames[-1], frames[0]
    assert labels.forces_eV_A.shape == (len(last), 3) == (8, 3)
    assert set(last.get_chemical_symbols()) == {'Si'}
    assert labels.energy_eV == pytest.approx(last.get_potential_energy(), abs=1e-7)
    assert labels.energy_eV == pytest.approx(-43.39087657, abs=1e-7)
    np.testing.assert_allclose(labels.forces_eV_A, last.get_forces(), atol=1e-8)
    np.testing.assert_allclose(labels.stress_eV_A3, last.get_stress(voigt=False), atol=1e-10)
    raw = xml_final_block(path, -1)
    np.testing.assert_allclose(labels.forces_eV_A, raw['forces'], atol=1e-8)
    np.testing.assert_allclose(labels.stress_eV_A3, -raw['stress'] * 0.1 * GPa, atol=1e-12)
    # the last step, not the first: the first step's forces are far larger
    assert np.abs(first.get_forces()).max() > 10 * np.abs(labels.forces_eV_A).max()


# ------------------------------------------------------------------------------------- (d) validation and errors
def test_validate(potcar_family, lpsc_cell, si_cell):
    """validate: None for good inputs, one clear sentence for each problem."""
    ok = {'potential_family': FAMILY}
    assert engine.validate(lpsc_cell, 'pbe', 'moderate', **ok) is None
    assert engine.validate(si_cell, 'HSE06', 'fast', **ok) is None
    assert 'unknown functional' in engine.validate(si_cell, 'b3lyp', 'fast', **ok)
    assert 'unknown protocol' in engine.validate(si_cell, 'pbe', 'ultra', **ok)

    flat = si_cell.get_ase()
    flat.pbc = (True, True, False)
    assert 'not periodic' in engine.validate(orm.StructureData(ase=flat), 'pbe', 'fast', **ok)
    crowded = si_cell.get_ase()
    crowded.positions[1] = crowded.positions[0] + [0.2, 0.0, 0.0]
    assert 'overlap' in engine.validate(orm.StructureData(ase=crowded), 'pbe', 'fast', **ok)

    # an element the family lacks (Ge_d is not in the stub family), and one without any mapping
    germanium = orm.StructureData(ase=bulk('Ge', 'diamond', a=5.66))
    assert 'lacks Ge_d' in engine.validate(germanium, 'pbe', 'fast', **ok)
    assert 'lacks Ge_x' in engine.validate(germanium, 'pbe', 'fast', potential_mapping={'Ge': 'Ge_x'}, **ok)
    assert 'no POTCAR family' in engine.validate(si_cell, 'pbe', 'fast')
    assert 'does not exist' in engine.validate(si_cell, 'pbe', 'fast', potential_family='nope')
    assert 'no POTCAR mapping for X' in engine.validate(_with_unknown_element(), 'pbe', 'fast', **ok)
    with pytest.raises(ValueError, match='no POTCAR mapping for X'):
        engine.get_potential_mapping(_with_unknown_element(), {})


def _with_unknown_element() -> orm.StructureData:
    """A structure with the dummy element X (no POTCAR exists for it)."""
    structure = orm.StructureData(cell=np.eye(3) * 4.0)
    structure.append_atom(position=(0.0, 0.0, 0.0), symbols='X')
    return structure


def test_potential_mapping_by_kind():
    """Kinds are mapped by name first, then by element; user mappings take precedence over the defaults."""
    structure = orm.StructureData(cell=np.eye(3) * 5.0)
    structure.append_atom(position=(0.0, 0.0, 0.0), symbols='Li', name='Li1')
    structure.append_atom(position=(2.5, 2.5, 2.5), symbols='Li', name='Li2')
    structure.append_atom(position=(2.5, 0.0, 0.0), symbols='S')
    mapping = engine.get_potential_mapping(structure, {'Li2': 'Li'})
    assert mapping == {'Li1': 'Li_sv', 'Li2': 'Li', 'S': 'S'}


def test_labels_errors():
    """labels_from_outputs refuses missing or malformed labels and unconverged runs."""
    good = {
        'total_energies': {'energy_extrapolated': -1.0},
        'forces': [[0.0, 0.0, 0.1]],
        'stress': np.eye(3).tolist(),
        'run_status': {'electronic_converged': True},
    }
    labels = engine.labels_from_outputs({'misc': orm.Dict(good)})
    assert labels.energy_eV == -1.0
    np.testing.assert_allclose(labels.stress_eV_A3, -0.1 * GPa * np.eye(3))
    no_stress = engine.labels_from_outputs({'misc': {key: value for key, value in good.items() if key != 'stress'}})
    assert no_stress.stress_eV_A3 is None
    bad_cases = [
        ({}, 'lack "misc"'),
        ({'misc': {**good, 'total_energies': {}}}, 'energy_extrapolated'),
        ({'misc': {key: value for key, value in good.items() if key != 'forces'}}, 'lack forces'),
        ({'misc': {**good, 'forces': [0.0, 0.1]}}, 'shape'),
        ({'misc': {**good, 'stress': [1.0, 2.0, 3.0]}}, '3x3'),
        ({'misc': {**good, 'forces': [[np.nan, 0.0, 0.0]]}}, 'not finite'),
        ({'misc': {**good, 'run_status': {'electronic_converged': False}}}, 'electronic convergence'),
        ({'misc': {**good, 'run_status': {'finished': False}}}, 'end of execution'),
    ]
    for outputs, message in bad_cases:
        with pytest.raises(DftOutputError, match=message):
            engine.labels_from_outputs(outputs)


def test_fixture_files_are_shipped():
    """The fixtures travel with the repository (CI runs on a clean clone): files present, licence included, < 2 MB."""
    files = [path for path in FIXTURES.rglob('*') if path.is_file()]
    names = {path.relative_to(FIXTURES).as_posix() for path in files}
    assert {
        'LICENSE-aiida-vasp.txt',
        'README.md',
        'single_point/vasprun.xml',
        'single_point/OUTCAR',
        'single_point/CONTCAR',
        'single_point/vasp_output',
        'relax/vasprun.xml',
    } <= names
    assert sum(path.stat().st_size for path in files) < 2 * 1024**2
