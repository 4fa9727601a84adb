"""``LocalityWorkChain`` (``mlffdiff.locality``): how far a perturbation reaches into a model's forces.

Builds a supercell of the structure and, per central atom (the first of each species), configurations with every
atom beyond R displaced (``locality_configurations``); predicts their forces with the model in its own engine
environment (:class:`~aiida_mlffdiff.calculations.predict.PredictCalculation`); returns the locality error
(meV/Å) per radius and species, R/(2 r_f) and the radius from which the error stays below a threshold
(``locality_profile``). The receptive field r_f (cutoff × message-passing layers) is an input, resolved on the
client by :meth:`LocalityWorkChain.get_builder_from_model` from the model's training parameters (or the pretrained
model's record). Works for every architecture, pretrained ones included.
"""

from __future__ import annotations

import math

from aiida import orm
from aiida.engine import ToContext, WorkChain

from ..architectures import receptive_field_A
from ..calculations.evaluate import PRETRAINED_MODELS
from ..calculations.predict import PredictCalculation
from ..data.mlff_model import MlffModel
from ..functions.locality import locality_configurations, locality_parameters, locality_profile

__all__ = ('LocalityWorkChain', 'default_radii_A', 'model_receptive_field_A')


def model_receptive_field_A(model: MlffModel) -> float:
    """The receptive field r_f (Å) of ``model``: cutoff × message-passing layers, the layers read from the
    parameters of the TrainCalculation that created it (provenance) or from the pretrained model's record.

    :raises ValueError: a model of unknown origin (imported): pass ``receptive_field_A`` yourself.
    """
    if model.pretrained:
        entry = PRETRAINED_MODELS[model.model_name]
        return float(entry['cutoff_A']) * int(entry['layers'])
    creator = model.creator
    if creator is None or 'parameters' not in creator.inputs:
        if receptive_field_A(model.architecture, 1.0) == 1.0:  # a local descriptor: the cutoff is the answer
            return float(model.cutoff_A)
        raise ValueError(
            f'{model.describe()} was not trained here, so its message-passing layers are unknown: give '
            'receptive_field_A (cutoff × layers, Å).'
        )
    return receptive_field_A(model.architecture, model.cutoff_A, creator.inputs.parameters.get_dict())


def default_radii_A(cutoff_A: float, receptive_field: float, amplitude_A: float = 0.05) -> list[float]:
    """From below one cutoff to just beyond twice the receptive field (Å): ½ r_c, r_c, ½, ¾ and 1 × 2 r_f, and
    2 r_f + the largest displacement + 0.25 Å (where the error must vanish)."""
    beyond = 2 * receptive_field + math.sqrt(3) * amplitude_A + 0.25
    radii = {0.5 * cutoff_A, cutoff_A, receptive_field, 1.5 * receptive_field, 2 * receptive_field, beyond}
    return sorted(round(r, 3) for r in radii)


def validate_inputs(value, _=None) -> str | None:
    """Submission-time checks: the parameters and the supercell they need, the species, the receptive field."""
    model, structure = value.get('model'), value.get('structure')
    if model is None or structure is None:
        return None
    try:
        model.check_species(sorted(set(structure.get_ase().get_chemical_symbols())))
    except ValueError as exception:
        return f'the model cannot evaluate this structure: {exception}'
    if not all(structure.pbc):
        return 'the structure must be periodic along all three cell vectors.'
    field = value.get('receptive_field_A')
    if field is not None and not field.value > 0:
        return f'receptive_field_A must be positive (Å), got {field.value}.'
    try:
        locality_parameters(value['parameters'].get_dict(), structure.cell, len(structure.sites))
    except ValueError as exception:
        return str(exception)
    return None


class LocalityWorkChain(WorkChain):
    """The locality error of a model's forces against the radius of the fixed region around a central atom."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('model', valid_type=MlffModel, help='Any model: trained, pretrained or fine-tuned.')
        spec.input('structure', valid_type=orm.StructureData, help='The cell to repeat into the test supercell.')
        spec.input(
            'receptive_field_A',
            valid_type=orm.Float,
            help="The model's receptive field r_f (Å): cutoff × message-passing layers (the cutoff for DeePMD).",
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            help='radii_A, n_samples, amplitude_A (Å), seed, threshold_meV_A, max_atoms (functions/locality.py).',
        )
        spec.expose_inputs(PredictCalculation, namespace='predict', exclude=('model', 'configurations'))
        spec.inputs.validator = validate_inputs
        spec.outline(cls.build, cls.predict, cls.analyse)
        spec.output('configurations', valid_type=orm.TrajectoryData, help='The displaced supercells (Å).')
        spec.output('predictions', valid_type=orm.ArrayData, help="The model's energies (eV) and forces (eV/Å).")
        spec.output('locality', valid_type=orm.Dict, help='Locality error (meV/Å) per radius and species.')
        spec.exit_code(400, 'ERROR_PREDICTION_FAILED', message='The model could not predict the forces: {message}')

    @classmethod
    def get_builder_from_model(
        cls,
        model: MlffModel,
        structure: orm.StructureData,
        code: orm.AbstractCode,
        *,
        radii_A: list[float] | None = None,
        receptive_field: float | None = None,
        **parameters,
    ):
        """A builder with the receptive field and the radii resolved here (inputs of the chain, not looked up later).

        :param code: the python of the model's engine environment.
        :param radii_A: the radii to sweep (Å); default :func:`default_radii_A`.
        :param receptive_field: r_f (Å); default :func:`model_receptive_field_A`.
        :param parameters: the other locality parameters (``n_samples``, ``amplitude_A``, ...).
        """
        field = float(receptive_field) if receptive_field is not None else model_receptive_field_A(model)
        amplitude = parameters.get('amplitude_A', 0.05)
        builder = cls.get_builder()
        builder.model = model
        builder.structure = structure
        builder.receptive_field_A = orm.Float(field)
        radii = radii_A if radii_A is not None else default_radii_A(model.cutoff_A, field, amplitude)
        builder.parameters = orm.Dict({'radii_A': [float(r) for r in radii], **parameters})
        builder.predict.code = code
        return builder

    def build(self):
        """The supercell and its displaced configurations (a calcfunction: each configuration is provenance)."""
        self.ctx.configurations = locality_configurations(self.inputs.structure, self.inputs.parameters)
        attributes = self.ctx.configurations.base.attributes
        supercell = 'x'.join(map(str, attributes.get('repetitions')))
        centers = ', '.join(attributes.get('center_species'))
        radii = ', '.join(f'{r:g}' for r in attributes.get('radii_A'))
        self.report(
            f'{self.ctx.configurations.numsteps} configurations of a {supercell} supercell '
            f'({attributes.get("n_atoms_supercell")} atoms) around {centers} atoms, R = {radii} Å'
        )

    def predict(self):
        inputs = self.exposed_inputs(PredictCalculation, 'predict')
        node = self.submit(
            PredictCalculation, model=self.inputs.model, configurations=self.ctx.configurations, **inputs
        )
        self.report(
            f'predicting the forces with {self.inputs.model.describe()}: launched {node.process_label}<{node.pk}>'
        )
        return ToContext(prediction=node)

    def analyse(self):
        node = self.ctx.prediction
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_PREDICTION_FAILED.format(
                message=f'{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message}'
            )
        threshold = orm.Float(self.inputs.parameters.get('threshold_meV_A', 1.0))
        profile = locality_profile(
            self.ctx.configurations, node.outputs.predictions, self.inputs.receptive_field_A, threshold
        )
        self.out('configurations', self.ctx.configurations)
        self.out('predictions', node.outputs.predictions)
        self.out('locality', profile)
        r_f = self.inputs.receptive_field_A.value
        for species, entry in profile['species'].items():
            radius = entry['radius_below_threshold_A']
            where = (
                f'below {threshold.value:g} meV/Å from R = {radius:g} Å (R/2r_f = {radius / (2 * r_f):.2f})'
                if radius is not None
                else f'not below {threshold.value:g} meV/Å within the sweep'
            )
            self.report(f'{species}: locality error {entry["errors_meV_A"][0]:.3g} meV/Å at R = '
                        f'{profile["radii_A"][0]:g} Å, {where}')  # fmt: skip
        return None
