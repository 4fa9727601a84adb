"""``BenchmarkWorkChain`` (``mlffdiff.benchmark``): several MLIPs on one material, judged against DFT and a reference D.

The models (universal ones zero-shot, fine-tuned or trained alike) are given by label, each with the python of its
engine environment. All at once: one ``EvaluateCalculation`` per model on a DFT ``TrainingSet`` (force and energy
errors overall, per species and per configuration type, e.g. near-equilibrium against hot MD snapshots) and one
``DiffusionWorkChain`` per model on the MD cell at the benchmark's temperatures. A reference D per temperature
(``reference_diffusion.T_<K>K``: the ``compute_diffusion`` result of an imported AIMD trajectory, see
``aiida-mlffdiff analyze --reference-code``) turns each model's D into D/D_ref with its uncertainty;
``compare_benchmark`` makes the table and correlates the force error with |ln D/D_ref| across the models.
"""

from __future__ import annotations

import re

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from ..calculations.evaluate import EvaluateCalculation, model_code_problem
from ..data.mlff_model import MlffModel
from ..data.training_set import TrainingSet
from ..functions.benchmark import compare_benchmark
from .diffusion import DiffusionWorkChain, md_inputs_problem, namespace_inputs, temperature_label


def model_label(name: str) -> str:
    """A link label for a model name: ``chgnet-0.3.0`` → ``chgnet_0_3_0``, ``7net-mf-0-pbe`` → ``sevennet_mf_0_pbe``."""
    label = re.sub('[^0-9a-zA-Z]+', '_', re.sub('^7net', 'sevennet', name)).strip('_').lower()
    return label if label and not label[0].isdigit() else f'model_{label}'


def validate_inputs(value, _=None) -> str | None:
    """Submission-time checks: a code per model of the model's engine, species covered, references matching."""
    models = dict(value.get('models') or {})
    codes = dict(value.get('codes') or {})
    if not models:
        return 'give at least one model (models.<label>).'
    reference_set, structure = value.get('reference_set'), value.get('structure')
    temperatures = value.get('temperatures')
    if reference_set is None and structure is None:
        return 'nothing to benchmark: give a DFT reference_set, an MD structure with temperatures, or both.'
    if (structure is None) != (temperatures is None) or (structure is not None and 'diffusion' not in value):
        return 'MD needs structure, temperatures and the diffusion inputs together.'
    for label in sorted(set(codes) - set(models)):
        return f'codes.{label} has no model.'
    for label, model in sorted(models.items()):
        if label not in codes:
            return f'models.{label} ({model.describe()}) has no code: give codes.{label}, the python of its engine.'
        problem = model_code_problem(model, codes[label])
        if problem:
            return f'models.{label}: {problem}'
        if structure is not None:  # what each model's DiffusionWorkChain and its MD jobs would refuse, checked now
            diffusion = dict(value['diffusion'])
            md = {**dict(diffusion.get('md', {}).get('md', {})), 'code': codes[label]}
            chain = {**diffusion, 'model': model, 'structure': structure, 'temperatures': temperatures}
            problem = md_inputs_problem(chain, md)
            if problem:
                return f'models.{label}: {problem}'
        for what, node in (('reference_set', reference_set), ('structure', structure)):
            if node is None:
                continue
            species = node.species if what == 'reference_set' else sorted(node.get_symbols_set())
            try:
                model.check_species(species)
            except ValueError as exception:
                return f'models.{label} cannot run the {what}: {exception}'
    references = dict(value.get('reference_diffusion') or {})
    if references:
        if temperatures is None:
            return 'reference_diffusion needs the MD (structure, temperatures) to compare with.'
        wanted = {temperature_label(t) for t in temperatures.get_list()}
        for t_label, node in sorted(references.items()):
            if t_label not in wanted:
                return f'reference_diffusion.{t_label} is at none of the temperatures ({", ".join(sorted(wanted))}).'
            result = node.get_dict()
            if 'D_cm2_s' not in result:
                return f'reference_diffusion.{t_label} holds no D_cm2_s: give the diffusion result of `analyze`.'
            at = result.get('temperature_K')
            if at is not None and temperature_label(float(at)) != t_label:
                return f'reference_diffusion.{t_label} is the D of a run at {at:g} K.'
            parameters = value['diffusion'].get('md', {}).get('md', {}).get('parameters')
            mobile = parameters.get_dict().get('mobile_species', 'Li') if parameters is not None else None
            if result.get('species') and mobile and result['species'] != mobile:
                return f'reference_diffusion.{t_label} is the D of {result["species"]}, the MD follows {mobile}.'
    return None


class BenchmarkWorkChain(WorkChain):
    """Models against DFT forces (per species, per configuration type) and against a reference D (AIMD)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace('models', valid_type=MlffModel, dynamic=True, help='The models, by label.')
        spec.input_namespace(
            'codes', valid_type=orm.AbstractCode, dynamic=True, help='Per model label: the python of its engine.'
        )
        spec.input('reference_set', valid_type=TrainingSet, required=False, help='DFT configurations (labels).')
        spec.input('structure', valid_type=orm.StructureData, required=False, help='The MD cell (Å).')
        spec.input('temperatures', valid_type=orm.List, required=False, help='MD temperatures (K).')
        spec.expose_inputs(
            DiffusionWorkChain,
            namespace='diffusion',
            exclude=('model', 'structure', 'temperatures'),
            namespace_options={
                'required': False,
                'populate_defaults': False,
                'help': "D(T) of every model: MD parameters, targets (md.md.code is each model's codes.<label>).",
            },
        )
        spec.input_namespace(
            'reference_diffusion',
            valid_type=orm.Dict,
            dynamic=True,
            required=False,
            help='Reference D per temperature, as T_<K>K (e.g. T_600K): the diffusion result of an imported AIMD.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.run_models, cls.inspect_models, cls.results)
        spec.output_namespace('metrics', valid_type=orm.Dict, dynamic=True, help='Errors against DFT per model.')
        spec.output_namespace('diffusion', valid_type=orm.Dict, dynamic=True, help='D(T) summary per model.')
        spec.output('comparison', valid_type=orm.Dict, help='The benchmark table (rows, reference, correlation).')
        spec.exit_code(401, 'ERROR_ALL_MODELS_FAILED', message='Every model failed: {message}')
        spec.exit_code(402, 'ERROR_SOME_MODELS_FAILED', message='Some models failed: {message}')
        spec.exit_code(403, 'ERROR_COMPARISON_FAILED', message='The comparison failed: {message}')

    @classmethod
    def get_builder_from_protocol(
        cls,
        models: dict[str, MlffModel],
        codes: dict[str, orm.AbstractCode],
        *,
        reference_set: TrainingSet | None = None,
        structure: orm.StructureData | None = None,
        temperatures=None,
        protocol: str = 'fast',
        overrides: dict | None = None,
        reference_diffusion: dict[str, orm.Dict] | None = None,
    ):
        """A builder: the models and their codes by label, the DFT set, and the MD of ``protocol`` (the diffusion
        protocols, ``overrides`` as for :meth:`DiffusionWorkChain.get_builder_from_protocol`) at ``temperatures``.

        :param reference_diffusion: temperature (K) or label ``T_<K>K`` → the reference D node.
        :raises ValueError: a label that is no link label, a model without a code, bad protocol values.
        """
        for label in models:
            if model_label(label) != label:
                raise ValueError(f'model label {label!r} is not a link label: use {model_label(label)!r}.')
        missing = sorted(set(models) - set(codes))
        if missing:
            raise ValueError(f'no code for model(s) {", ".join(missing)}: give the python of each engine.')
        builder = cls.get_builder()
        builder.models = dict(models)
        builder.codes = {label: codes[label] for label in models}
        if reference_set is not None:
            builder.reference_set = reference_set
        if structure is not None:
            values = [float(t) for t in temperatures or []]
            first = sorted(models)[0]
            sub = DiffusionWorkChain.get_builder_from_protocol(
                codes[first], None, structure, values, protocol=protocol, overrides=overrides
            )
            builder.structure = structure
            builder.temperatures = orm.List(values)
            builder.diffusion = namespace_inputs(sub, 'model', 'structure', 'temperatures')
        if reference_diffusion:
            builder.reference_diffusion = {
                key if isinstance(key, str) else temperature_label(float(key)): node
                for key, node in reference_diffusion.items()
            }
        return builder

    def setup(self):
        self.ctx.labels = sorted(self.inputs.models)
        self.ctx.failed = {}
        parts = [f'{len(self.ctx.labels)} model(s): {", ".join(self.ctx.labels)}']
        if 'reference_set' in self.inputs:
            parts.append(f'DFT set of {self.inputs.reference_set.n_structures} configurations')
        if 'structure' in self.inputs:
            parts.append(f'MD at {", ".join(f"{t:g} K" for t in self.inputs.temperatures.get_list())}')
        if 'reference_diffusion' in self.inputs:
            parts.append(f'reference D at {", ".join(sorted(self.inputs.reference_diffusion))}')
        self.report('; '.join(parts))

    def run_models(self):
        """Every evaluation and every DiffusionWorkChain at once."""
        launched = {}
        for label in self.ctx.labels:
            model, code = self.inputs.models[label], self.inputs.codes[label]
            if 'reference_set' in self.inputs:
                node = self.submit(EvaluateCalculation, model=model, dataset=self.inputs.reference_set, code=code)
                self.report(f'{label}: evaluation on the DFT set: {node.process_label}<{node.pk}>')
                launched[f'evaluate_{label}'] = node
            if 'structure' in self.inputs:
                inputs = AttributeDict(self.exposed_inputs(DiffusionWorkChain, namespace='diffusion'))
                inputs.model, inputs.structure, inputs.temperatures = (
                    model,
                    self.inputs.structure,
                    self.inputs.temperatures,
                )
                inputs.md = AttributeDict(inputs.md)
                inputs.md.md = AttributeDict(inputs.md.md)
                inputs.md.md.code = code
                inputs.metadata = {'call_link_label': f'diffusion_{label}'}
                node = self.submit(DiffusionWorkChain, **inputs)
                self.report(f'{label}: MD: {node.process_label}<{node.pk}>')
                launched[f'diffusion_{label}'] = node
        return ToContext(**launched)

    def inspect_models(self):
        """Keep what finished; a failed model is reported and left out of the table."""
        self.ctx.metrics, self.ctx.summaries = {}, {}
        for label in self.ctx.labels:
            for kind in ('evaluate', 'diffusion'):
                node = self.ctx.get(f'{kind}_{label}')
                if node is None:
                    continue
                if not node.is_finished_ok:
                    reason = f'{node.process_label}<{node.pk}> failed [{node.exit_status}]: {node.exit_message}'
                    self.report(f'{label}: {reason}')
                    self.ctx.failed[label] = reason
                elif kind == 'evaluate':
                    self.ctx.metrics[label] = node.outputs.metrics
                    self.out(f'metrics.{label}', node.outputs.metrics)
                    per_species = node.outputs.metrics['force_mae_per_species_meV_A']
                    self.report(
                        f'{label}: force MAE {node.outputs.metrics["force_mae_meV_A"]:.1f} meV/Å ('
                        + ', '.join(f'{s} {v:.1f}' for s, v in sorted(per_species.items()))
                        + ')'
                    )
                else:
                    self.ctx.summaries[label] = node.outputs.summary
                    self.out(f'diffusion.{label}', node.outputs.summary)

    def results(self):
        nodes = {f'metrics_{label}': node for label, node in self.ctx.metrics.items()}
        nodes.update({f'summary_{label}': node for label, node in self.ctx.summaries.items()})
        if not nodes:
            return self.exit_codes.ERROR_ALL_MODELS_FAILED.format(message='; '.join(self.ctx.failed.values()))
        for t_label, node in (self.inputs.get('reference_diffusion') or {}).items():
            nodes[f'reference_{t_label}'] = node
        comparison, call = compare_benchmark.run_get_node(**nodes, metadata={'call_link_label': 'compare'})
        if not call.is_finished_ok:
            return self.exit_codes.ERROR_COMPARISON_FAILED.format(message=call.exit_message)
        self.out('comparison', comparison)
        for row in comparison['rows']:
            for t_label, cell in row['temperatures'].items():
                if 'D_ref_cm2_s' not in cell:
                    continue
                if cell['unresolved']:
                    self.report(f'{row["label"]} {t_label}: D/D_ref unresolved ({cell["unresolved"]})')
                else:
                    self.report(
                        f'{row["label"]} {t_label}: D/D_ref = {cell["ratio"]:.3g} '
                        f'(ln ratio {cell["ln_ratio"]:+.2f} ± {cell["ln_ratio_err"]:.2f})'
                    )
        if self.ctx.failed:
            return self.exit_codes.ERROR_SOME_MODELS_FAILED.format(message='; '.join(sorted(self.ctx.failed)))
        return None
