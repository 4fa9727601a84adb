"""``ForceConstantsWorkChain`` (``mlffdiff.force_constants``): 2nd- and 3rd-order force constants of DFT and of any
number of models on the same displaced supercells, and every model's errors against DFT.

structure + supercell matrix + displacement settings → aiida-phonopy's ``generate_preprocess_data`` (random ±u
snapshots, :mod:`~aiida_mlffdiff.functions.force_constants`) → forces from DFT (``ReferenceDataWorkChain``: Quantum
ESPRESSO here, VASP on a cluster; every supercell must succeed) and from each ``MlffModel`` (``PredictCalculation``
in the model's own engine environment: trained, pretrained, fine-tuned alike), all at once → ``PhonopyData`` per
source → Φ2 (``ForceConstantsData``) and Φ3 with symfc, phonons on the seekpath path and a q-mesh, checks (sum rule,
symmetry, acoustic modes at Γ) → per model ``compare_force_constants`` against DFT (IFC parity R², MAE, per
neighbour shell; phonon band/mesh RMSE in THz, DOS RMSE). A DFT reference of an earlier run is reused by giving its
``preprocess_data`` and ``reference`` outputs instead of ``dft``.

Refused at submission: partial occupancies, a non-periodic cell, a supercell narrower than twice a model's cutoff
(its atoms would see their own periodic images: the force constants of the model would depend on the supercell),
a displacement outside 0.005–0.2 Å, a model without the structure's species or without its engine's code, DFT
inputs that cannot be built.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, if_
from aiida.plugins import DataFactory

from ..analysis.locality import locality_repetitions
from ..calculations.evaluate import model_code_problem
from ..calculations.predict import PredictCalculation
from ..data.mlff_model import MlffModel
from ..functions.force_constants import (
    attach_forces,
    compare_force_constants,
    compute_force_constants,
    force_constants_parameters,
    minimum_width_A,
    structure_problem,
    supercell_matrix_array,
    supercells_trajectory,
)
from .reference import ReferenceDataWorkChain
from .reference import validate_inputs as validate_reference_inputs

__all__ = ('ForceConstantsWorkChain', 'minimum_repetitions')

PreProcessData = DataFactory('phonopy.preprocess')
ForceConstantsData = DataFactory('phonopy.force_constants')
#: The key of the DFT reference among the sources of force constants.
DFT = 'dft'


def minimum_repetitions(cell: np.ndarray, width_A: float) -> list[int]:
    """The smallest repetitions [n1, n2, n3] of ``cell`` whose supercell is wider than ``width_A`` (Å)."""
    return list(locality_repetitions(cell, width_A / 2))


def _supercell_cell(inputs) -> np.ndarray | None:
    if 'preprocess_data' in inputs:
        return np.asarray(inputs['preprocess_data'].get_supercell().cell)
    structure, matrix = inputs.get('structure'), inputs.get('supercell_matrix')
    if structure is None or matrix is None:
        return None
    return supercell_matrix_array(matrix.get_list()) @ np.asarray(structure.cell)


def validate_inputs(value, _=None) -> str | None:
    """Everything that can be checked before a displacement is made or a force computed."""
    preprocess = value.get('preprocess_data')
    structure = preprocess.get_unitcell() if preprocess is not None else value.get('structure')
    if structure is None:
        return 'give a structure and a supercell_matrix, or the preprocess_data of an earlier run.'
    if preprocess is None and 'supercell_matrix' not in value:
        return 'give the supercell_matrix (three repetitions or a 3×3 integer matrix).'
    if preprocess is not None and ('structure' in value or 'supercell_matrix' in value):
        return 'give either preprocess_data or structure and supercell_matrix, not both.'
    problem = structure_problem(structure)
    if problem:
        return problem
    try:
        parameters = force_constants_parameters(value['parameters'].get_dict() if 'parameters' in value else {})
        cell = _supercell_cell(value)
    except ValueError as exception:
        return str(exception)
    width = minimum_width_A(cell)
    species = sorted(set(structure.get_ase().get_chemical_symbols()))
    models, codes = dict(value.get('models', {})), dict(value.get('model_codes', {}))
    if DFT in models:
        return f'{DFT!r} names the DFT reference: give the model another key.'
    for key, model in sorted(models.items()):
        if 2 * model.cutoff_A > width:
            repetitions = minimum_repetitions(np.asarray(structure.cell), 2 * model.cutoff_A)
            return (
                f'model {key!r}: the supercell is {width:.2f} Å wide, less than twice the model cutoff '
                f'(2 × {model.cutoff_A:g} Å): its atoms would see their own periodic images; use at least '
                f'supercell_matrix {repetitions} of this cell.'
            )
        try:
            model.check_species(species)
        except ValueError as exception:
            return f'model {key!r} cannot evaluate this structure: {exception}'
        if key not in codes:
            return f'model {key!r} has no code: give model_codes.{key} (the python of its engine environment).'
        problem = model_code_problem(model, codes[key])
        if problem:
            return f'model {key!r}: {problem}'
    extra = sorted(set(codes) - set(models))
    if extra:
        return f'model_codes {extra} name no model.'
    reference = value.get('reference', {})
    dft = value.get('dft', {})
    if dft and reference:
        return 'give either dft (compute the reference) or reference (reuse one), not both.'
    if reference:
        if preprocess is None:
            return 'a reuse of reference force constants needs the preprocess_data they were computed on.'
        missing = sorted({'fc2', 'phonons'} - set(reference))
        if missing:
            return f'the reference lacks {", ".join(missing)}.'
        if 3 in parameters['orders'] and 'fc3' not in reference:
            return 'orders [2, 3] asked for, but the reference has no fc3.'
    if dft:
        probe = {**dft, 'configurations': {'supercell': structure}}
        for port, default in (('max_concurrent', orm.Int(4)), ('max_failed_fraction', orm.Float(0.0))):
            probe.setdefault(port, default)
        problem = validate_reference_inputs(probe)
        if problem:
            return f'dft: {problem}'
    if not models and not dft:
        return 'nothing to compute: give dft and/or models.'
    return None


class ForceConstantsWorkChain(WorkChain):
    """Φ2 and Φ3 of DFT and of models on one set of displaced supercells, and each model's errors against DFT."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, required=False, help='The ordered unit cell (Å).')
        spec.input(
            'supercell_matrix',
            valid_type=orm.List,
            required=False,
            help='Three repetitions or a 3×3 integer matrix of the unit cell.',
        )
        spec.input(
            'preprocess_data',
            valid_type=PreProcessData,
            required=False,
            help='The displaced supercells of an earlier run (instead of structure and supercell_matrix).',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            help='orders, distance_A, number_of_snapshots, random_seed, fc3_cutoff_A (Å), symprec, band_points, '
            'mesh (functions/force_constants.py).',
        )
        spec.expose_inputs(
            ReferenceDataWorkChain,
            namespace='dft',
            exclude=('configurations', 'max_failed_fraction'),
            namespace_options={'required': False, 'populate_defaults': False, 'help': 'The DFT reference.'},
        )
        spec.inputs['dft'].validator = None
        spec.input_namespace(
            'reference',
            required=False,
            populate_defaults=False,
            help='Reuse a DFT reference: fc2, phonons (and fc3) of an earlier run on the same preprocess_data.',
        )
        spec.input('reference.fc2', valid_type=ForceConstantsData, required=False)
        spec.input('reference.fc3', valid_type=orm.ArrayData, required=False)
        spec.input('reference.phonons', valid_type=orm.ArrayData, required=False)
        spec.input_namespace('models', valid_type=MlffModel, dynamic=True, help='The models, by key.')
        spec.input_namespace(
            'model_codes', valid_type=orm.AbstractCode, dynamic=True, help='The engine python of each model, by key.'
        )
        spec.expose_inputs(PredictCalculation, namespace='predict', exclude=('model', 'configurations', 'code'))
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            cls.run_forces,
            cls.inspect_forces,
            cls.run_force_constants,
            if_(cls.has_reference)(cls.compare),
            cls.finalize,
        )
        spec.output('preprocess_data', valid_type=PreProcessData, help='Unit cell, supercell, displacements.')
        spec.output('supercells', valid_type=orm.TrajectoryData, help='The displaced supercells (Å).')
        spec.output_namespace('phonopy_data', valid_type=DataFactory('phonopy.phonopy'), dynamic=True)
        spec.output_namespace('fc2', valid_type=ForceConstantsData, dynamic=True, help='Φ2 (eV/Å²) by source.')
        spec.output_namespace('fc3', valid_type=orm.ArrayData, dynamic=True, help='Φ3 (eV/Å³, compact) by source.')
        spec.output_namespace('phonons', valid_type=orm.ArrayData, dynamic=True, help='Frequencies (THz) by source.')
        spec.output_namespace('checks', valid_type=orm.Dict, dynamic=True, help='Sum rule, symmetry, Γ by source.')
        spec.output_namespace('metrics', valid_type=orm.Dict, dynamic=True, help='Errors against DFT by model.')
        spec.exit_code(401, 'ERROR_DFT_FAILED', message='The DFT forces failed: {message}')
        spec.exit_code(402, 'ERROR_MODEL_FAILED', message='The forces of some models failed: {message}')
        spec.exit_code(
            403, 'ERROR_FORCE_CONSTANTS_FAILED', message='The force constants could not be fitted: {message}'
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        structure: orm.StructureData,
        supercell_matrix: list,
        *,
        models: dict[str, MlffModel] | None = None,
        model_codes: dict[str, orm.AbstractCode] | None = None,
        dft_code: orm.AbstractCode | None = None,
        functional: str = 'pbe',
        engine: str = 'qe',
        protocol: str = 'moderate',
        overrides: dict | None = None,
        dft_options: dict | None = None,
        parameters: dict | None = None,
        **engine_kwargs,
    ):
        """A builder with the DFT settings of ``protocol`` resolved here (``ReferenceDataWorkChain``'s protocol).

        :param dft_code: pw.x (qe) or vasp; without it no DFT reference is computed.
        :param engine_kwargs: the DFT engine's own arguments (``pseudo_family``, ``max_concurrent``, ...).
        """
        builder = cls.get_builder()
        builder.structure = structure
        builder.supercell_matrix = orm.List(np.asarray(supercell_matrix).tolist())
        builder.parameters = orm.Dict(force_constants_parameters(parameters))
        builder.models = dict(models or {})
        builder.model_codes = dict(model_codes or {})
        if dft_code is not None:
            reference = ReferenceDataWorkChain.get_builder_from_protocol(
                dft_code, {'supercell': structure}, functional, engine, protocol, overrides, dft_options,
                **engine_kwargs,
            )  # fmt: skip
            for key, port_value in reference.items():
                if key not in ('configurations', 'max_failed_fraction', 'metadata') and port_value is not None:
                    builder.dft[key] = port_value
        return builder

    def has_reference(self) -> bool:
        return DFT in self.ctx.sources

    def setup(self):
        """The displaced supercells (aiida-phonopy's calcfunctions: every supercell is provenance)."""
        from aiida_phonopy.calculations.functions.data_utils import generate_preprocess_data

        parameters = force_constants_parameters(self.inputs.parameters.get_dict())
        if 'preprocess_data' in self.inputs:
            preprocess = self.inputs.preprocess_data
        else:
            generator = {
                'distance': parameters['distance_A'],
                'number_of_snapshots': parameters['number_of_snapshots'],
                'random_seed': parameters['random_seed'],
                'is_plusminus': True,
            }
            preprocess = generate_preprocess_data(
                structure=self.inputs.structure,
                supercell_matrix=orm.List(supercell_matrix_array(self.inputs.supercell_matrix.get_list()).tolist()),
                primitive_matrix=orm.Str('auto'),
                symprec=orm.Float(parameters['symprec']),
                displacement_generator=orm.Dict(generator),
            )
        self.ctx.preprocess = preprocess
        self.ctx.supercells = supercells_trajectory(preprocess)
        self.out('preprocess_data', preprocess)
        self.out('supercells', self.ctx.supercells)
        self.ctx.sources = {}
        if 'reference' in self.inputs and self.inputs.reference:
            self.ctx.sources[DFT] = None
        supercell = preprocess.get_supercell()
        self.report(
            f'{self.ctx.supercells.numsteps} displaced supercells of {len(supercell.sites)} atoms '
            f'({minimum_width_A(supercell.cell):.2f} Å wide), ±{parameters["distance_A"]} Å, orders '
            f'{parameters["orders"]}'
        )

    def run_forces(self):
        """DFT single points of every supercell and one PredictCalculation per model, all at once."""
        launched = {}
        if 'dft' in self.inputs and self.inputs.dft:
            structures = self.ctx.preprocess.calcfunctions.get_supercells_with_displacements()
            inputs = self.exposed_inputs(ReferenceDataWorkChain, 'dft')
            inputs['max_failed_fraction'] = orm.Float(0.0)
            node = self.submit(ReferenceDataWorkChain, configurations=structures, **inputs)
            launched[DFT] = node
            self.report(f'DFT forces of {len(structures)} supercells: launched {node.process_label}<{node.pk}>')
        predict = self.exposed_inputs(PredictCalculation, 'predict')
        for key, model in sorted(self.inputs.models.items()):
            node = self.submit(
                PredictCalculation, model=model, configurations=self.ctx.supercells, code=self.inputs.model_codes[key],
                **predict,
            )  # fmt: skip
            launched[key] = node
            self.report(f'{key}: forces with {model.describe()}: launched {node.process_label}<{node.pk}>')
        return ToContext(**{f'forces_{key}': node for key, node in launched.items()})

    def inspect_forces(self):
        """Attach the forces of every succeeded source to the supercells (``PhonopyData``); report the failures."""
        self.ctx.failed = {}
        for key in [DFT, *sorted(self.inputs.models)]:
            node = self.ctx.get(f'forces_{key}')
            if node is None:
                continue
            if not node.is_finished_ok:
                self.ctx.failed[key] = f'{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message}'
                self.report(f'{key}: the forces failed: {self.ctx.failed[key]}')
                continue
            forces = node.outputs.training_set if key == DFT else node.outputs.predictions
            self.ctx.sources[key] = attach_forces(self.ctx.preprocess, forces)
            self.out(f'phonopy_data.{key}', self.ctx.sources[key])
        if DFT in self.ctx.failed:
            return self.exit_codes.ERROR_DFT_FAILED.format(message=self.ctx.failed[DFT])
        if not self.ctx.sources:
            return self.exit_codes.ERROR_MODEL_FAILED.format(message='; '.join(self.ctx.failed.values()))
        return None

    def run_force_constants(self):
        """Φ2, Φ3, phonons and checks of every source with forces."""
        self.ctx.results = {}
        if DFT in self.ctx.sources and self.ctx.sources[DFT] is None:
            self.ctx.results[DFT] = dict(self.inputs.reference)
        for key, phonopy_data in sorted(self.ctx.sources.items()):
            if phonopy_data is None:
                continue
            try:
                results = compute_force_constants(phonopy_data, self.inputs.parameters)
            except Exception as exception:
                return self.exit_codes.ERROR_FORCE_CONSTANTS_FAILED.format(message=f'{key}: {exception}')
            self.ctx.results[key] = results
            for port, node in results.items():
                self.out(f'{port}.{key}', node)
            checks = results['checks']
            self.report(
                f'{key}: Φ2 sum rule {checks["fc2_sum_rule_residual_eV_A2"]:.1e} eV/Å², symmetry '
                f'{checks["fc2_symmetry_residual_eV_A2"]:.1e} eV/Å² ({checks["symmetry_operations"]} operations), '
                f'frequencies {checks["min_frequency_THz"]:.2f} to {checks["max_frequency_THz"]:.2f} THz'
            )
        return None

    def compare(self):
        """Every model's force constants and phonons against DFT."""
        reference = self.ctx.results[DFT]
        for key in sorted(self.ctx.results):
            if key == DFT:
                continue
            results = self.ctx.results[key]
            third = {}
            if 'fc3' in results and 'fc3' in reference:
                third = {'reference_fc3': reference['fc3'], 'fc3': results['fc3']}
            metrics = compare_force_constants(
                reference['fc2'], results['fc2'], reference['phonons'], results['phonons'], **third
            )
            self.out(f'metrics.{key}', metrics)
            fc2, phonons = metrics['fc2'], metrics['phonons']
            line = (
                f'{key} against DFT: Φ2 R² {fc2["r2"]:.3f}, MAE {fc2["mae"]:.3g} eV/Å²; phonons RMSE '
                f'{phonons["band_rmse_THz"]:.2f} THz (path), {phonons["mesh_rmse_THz"]:.2f} THz (mesh)'
            )
            if 'fc3' in metrics.get_dict():
                line += f'; Φ3 R² {metrics["fc3"]["r2"]:.3f}, MAE {metrics["fc3"]["mae"]:.3g} eV/Å³'
            self.report(line)

    def finalize(self):
        if self.ctx.failed:
            return self.exit_codes.ERROR_MODEL_FAILED.format(
                message='; '.join(f'{key}: {text}' for key, text in sorted(self.ctx.failed.items()))
            )
        return None
