"""The cost planner: a protocol's MD cost predicted from a model's measured scaling on a computer (provenance query).

``aiida-mlffdiff plan`` and the study's budget check use :func:`measured_scaling` (the newest finished
ScalingWorkChain of that model whose jobs ran on that computer) and :func:`plan` (the numbers of
:func:`aiida_mlffdiff.analysis.scaling.plan_md` at the requested size).
"""

from __future__ import annotations

from aiida import orm

from .analysis.scaling import plan_md, seconds_per_step_at
from .data.mlff_model import MlffModel

__all__ = ('SCALING_LABEL', 'measured_scaling', 'plan')

SCALING_LABEL = 'ScalingWorkChain'


def _newest_scaling(model_filters: dict, computer: str, engine: str | None = None) -> orm.WorkflowNode | None:
    """The newest finished ScalingWorkChain of a model matching ``model_filters`` whose MD jobs ran on
    ``computer`` (label), with the MD ``engine`` if one is given, or None."""
    chains = {}
    for nested in (False, True):  # the MD jobs are the chain's children, or (LAMMPS) its grandchildren
        query = orm.QueryBuilder()
        query.append(MlffModel, filters=model_filters, tag='model')
        query.append(
            orm.WorkflowNode,
            with_incoming='model',
            edge_filters={'label': 'model'},
            filters={'attributes.process_label': SCALING_LABEL, 'attributes.exit_status': 0},
            tag='chain',
            project='*',
        )
        parent = 'chain'
        if nested:
            query.append(orm.WorkflowNode, with_incoming='chain', tag='ensemble')
            parent = 'ensemble'
        query.append(orm.CalcJobNode, with_incoming=parent, tag='job')
        query.append(orm.Computer, with_node='job', filters={'label': computer})
        if engine is not None:
            query.append(
                orm.Dict,
                with_outgoing='chain',
                edge_filters={'label': 'parameters'},
                filters={'attributes.engine': engine},
            )
        chains.update({chain.pk: chain for (chain,) in query.all()})
    return chains[max(chains)] if chains else None


def measured_scaling(
    model: MlffModel, computer: str, engine: str | None = None
) -> tuple[orm.WorkflowNode, dict] | None:
    """The newest finished ScalingWorkChain of ``model`` whose MD jobs ran on ``computer`` (label), with the MD
    ``engine`` if one is given, and its ``scaling`` output, or None when the model was not measured there."""
    chain = _newest_scaling({'id': model.pk}, computer, engine)
    return None if chain is None else (chain, chain.outputs.scaling.get_dict())


def plan(scaling: dict, n_atoms: int, **protocol) -> dict:
    """The cost of an MD protocol at ``n_atoms`` from a ``scaling`` Dict, with where the size lies: ``measured
    range`` (interpolated), ``extrapolated`` (beyond the largest measured size, at least linear) or ``below``
    (the smallest size's cost).

    :param protocol: the keyword arguments of :func:`~aiida_mlffdiff.analysis.scaling.plan_md`.
    """
    sizes, seconds = scaling['n_atoms'], scaling['seconds_per_step']
    per_step = seconds_per_step_at(sizes, seconds, n_atoms)
    where = 'below' if n_atoms < sizes[0] else 'measured range' if n_atoms <= sizes[-1] else 'extrapolated'
    result = plan_md(per_step, n_atoms=n_atoms, **protocol)
    result.update(n_atoms=n_atoms, size_range=where, measured_atoms=[sizes[0], sizes[-1]])
    return result


def newest_scaling_of_architecture(architecture: str, computer: str, engine: str | None = None) -> dict | None:
    """The ``scaling`` of the newest finished ScalingWorkChain of any model of ``architecture`` measured on
    ``computer`` (with ``engine`` if given): the cost estimate for a model not trained yet (a study at submission)."""
    chain = _newest_scaling({'attributes.architecture': architecture}, computer, engine)
    return None if chain is None else chain.outputs.scaling.get_dict()


def study_md_budget(builder, computer: str, budget_hours: float) -> list[str]:
    """Warnings for the MD of a study builder's rows whose worst case (every temperature up to ``max_replicas``)
    would take longer than ``budget_hours`` of wall time on ``computer``, from measured scalings of the same
    architecture there (with the row's MD engine, else with another engine, which the warning names); a row whose
    architecture was never measured there is said so."""
    warnings = []
    structure = builder.get('md_structure') or builder.structure
    n_atoms = len(structure.sites)
    for architecture, inputs in builder.diffusion.items():
        parameters = inputs['md']['md'].get('parameters')
        md = parameters.get_dict() if parameters is not None else {}
        engine = md.get('engine')
        scaling = newest_scaling_of_architecture(architecture, computer, engine)
        scaling = scaling or newest_scaling_of_architecture(architecture, computer)
        if scaling is None:
            warnings.append(f'{architecture}: no scaling measured on {computer}: its MD cost is unknown.')
            continue
        measured = scaling.get('engine', '?')
        other = f' with the {measured} engine (the row runs {engine})' if measured != engine else ''

        result = plan(
            scaling, n_atoms, replicas=int(inputs['max_replicas'].value), production_ps=md['production_ps'],
            timestep_fs=md.get('timestep_fs', 1.0), equilibration_ps=md.get('equilibration_ps', 1.0),
            sampling_interval_fs=md.get('sampling_interval_fs'), temperatures=len(builder.temperatures.get_list()),
            parallel_replicas=int(inputs['replicas_per_batch'].value),
        )  # fmt: skip
        if result['wall_hours'] > budget_hours:
            warnings.append(
                f'{architecture}: the MD may take up to {result["wall_hours"]:.3g} h per functional on {computer} '
                f'(> {budget_hours:g} h): {result["replica_runs"]} replica runs × {result["steps_per_replica"]:.3g} '
                f'steps at {n_atoms} atoms, {result["seconds_per_step"] * 1e3:.3g} ms/step measured for {architecture}'
                f'{other}.'
            )
    return warnings
