"""``ScalingWorkChain`` (``mlffdiff.scaling``): a model's MD cost against the number of atoms, measured here.

Runs one short MD job per supercell, one after the other so that they do not compete for the cores:
:class:`~aiida_mlffdiff.calculations.md_ensemble.MdEnsembleCalculation` for the ASE and torch-sim engines; for
``engine: lammps`` (DeePMD models only) a :class:`~aiida_mlffdiff.workchains.lammps_ensemble.LammpsEnsembleWorkChain`
of one replica whose ``md.code`` is the LAMMPS code (its cost is LAMMPS' own loop time, its peak memory that of
LAMMPS' ``info memory``; its job script records the hardware). ``scaling_summary`` gives the seconds per step,
atom-steps per second and peak memory against the number of atoms, the log-log slope (1: O(N)) and the wall time of
10⁶ steps. Every job records the hardware it ran on; the chain's computer is that of its code. The planner
(``aiida-mlffdiff plan``) predicts a protocol's cost from these measurements.

Two optional dimensions are measured at the probe size (the median of the sizes), one job per value:

- ``replicas_per_batch`` (engine ``torchsim``, which integrates a worker's replicas as one batch): atom-steps per
  process-second of one worker holding that many replicas, and the speed-up over one replica (output ``batching``);
- ``threads_per_worker``: atom-steps per process-second of one worker with that many torch/OpenMP threads, the
  speed-up and the parallel efficiency (speed-up / threads; output ``threading``).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, while_

from ..calculations.md_ensemble import MdEnsembleCalculation, engine_problem, md_problem
from ..data.mlff_model import MlffModel
from ..functions.scaling import scaling_summary, variation_summary
from .lammps_ensemble import ENGINE as ENGINE_LAMMPS
from .lammps_ensemble import LammpsEnsembleWorkChain, validate_lammps_inputs

__all__ = ('MIN_SIZES', 'MIN_SPAN', 'ScalingWorkChain', 'supercells_for')

#: A scaling needs at least this many sizes, the largest at least MIN_SPAN times the smallest (atoms).
MIN_SIZES, MIN_SPAN = 3, 30

#: MD of the measurement: short, one replica per job (its atom-steps per process-second over the production is the
#: cost; the 20 equilibration steps warm the model up: TorchScript's first calls are slower).
DEFAULT_MD = {
    'temperature_K': 300.0,
    'timestep_fs': 1.0,
    'equilibration_ps': 0.02,
    'production_ps': 0.1,
    'sampling_interval_fs': 10.0,
    'n_replicas': 1,
}


def supercells_for(n_atoms_cell: int, targets: list[int]) -> list[list[int]]:
    """Diagonal repetitions [n1, n2, n3] (n1 ≥ n2 ≥ n3) for each target atom count: among those within 30 % of the
    target (else all up to twice it), the most cubic one, then the one nearest the target."""
    sizes = []
    for target in targets:
        candidates = []
        for total in range(1, max(2, 2 * target // n_atoms_cell + 2)):
            for n3 in range(1, total + 1):
                for n2 in range(n3, total // n3 + 1):
                    if total % (n2 * n3) == 0 and total // (n2 * n3) >= n2:
                        candidates.append([total // (n2 * n3), n2, n3])
        near = [r for r in candidates if abs(n_atoms_cell * r[0] * r[1] * r[2] - target) <= 0.3 * target]
        pool = near or candidates
        sizes.append(min(pool, key=lambda r: (r[0] / r[2], abs(n_atoms_cell * r[0] * r[1] * r[2] - target))))
    return sizes


def validate_inputs(value, _=None) -> str | None:
    """At submission: at least MIN_SIZES distinct sizes spanning MIN_SPAN×, and MD parameters the job accepts."""
    model, structure = value.get('model'), value.get('structure')
    supercells = value.get('supercells')
    if model is None or structure is None or supercells is None:
        return None
    repeats = supercells.get_list()
    if any(len(r) != 3 or any(not isinstance(n, int) or n < 1 for n in r) for r in repeats):
        return f'supercells must be lists of three integers ≥ 1, got {repeats}.'
    n_atoms = sorted({len(structure.sites) * r[0] * r[1] * r[2] for r in repeats})
    if len(n_atoms) < MIN_SIZES or n_atoms[-1] < MIN_SPAN * n_atoms[0]:
        return f'a scaling needs at least {MIN_SIZES} sizes spanning {MIN_SPAN}× in atoms; these give {n_atoms} atoms.'
    for name in ('replicas_per_batch', 'threads_per_worker'):
        values = value[name].get_list() if name in value else []
        counts = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)
        if not counts or len(set(values)) != len(values):
            return f'{name} must be distinct integers ≥ 1, got {values}.'
    largest = max(repeats, key=lambda r: r[0] * r[1] * r[2])
    parameters = value['parameters'].get_dict()
    if parameters.get('engine') == ENGINE_LAMMPS:
        if 'replicas_per_batch' in value or 'threads_per_worker' in value:
            return 'the lammps engine runs one replica and one thread per job: measure replicas and threads with ase.'
        lammps = {
            'model': model, 'structure': structure, 'supercell': orm.List(largest),
            'parameters': value['parameters'], 'code': value.get('md', {}).get('code'),
        }  # fmt: skip
        return validate_lammps_inputs(lammps)
    problem, engine = md_problem(model, structure, orm.List(largest), parameters)
    if problem is None and 'replicas_per_batch' in value and engine != 'torchsim':
        problem = f'replicas_per_batch needs an engine that batches replicas (torchsim), not {engine!r}.'
    return problem or engine_problem(model, engine, value.get('md', {}).get('code'))


#: The ``md.metadata.options`` a LAMMPS job inherits: what the scheduler needs, never the options that belong to
#: MdEnsembleCalculation itself (its parser, its file names).
SCHEDULER_OPTIONS = (
    'resources', 'max_wallclock_seconds', 'account', 'queue_name', 'qos', 'custom_scheduler_commands',
    'max_memory_kb', 'environment_variables', 'prepend_text', 'append_text', 'import_sys_environment',
)  # fmt: skip


def scheduler_options(inputs) -> dict:
    """The scheduler options of the exposed ``md`` inputs, for the jobs of a LAMMPS ensemble."""
    options = inputs.get('metadata', {}).get('options', {})
    return {key: options[key] for key in SCHEDULER_OPTIONS if options.get(key) is not None}


def probe_size(repeats: list[list[int]]) -> list[int]:
    """The size at which the optional dimensions are measured: the median of the sizes (atoms)."""
    ordered = sorted(repeats, key=lambda r: r[0] * r[1] * r[2])
    return ordered[(len(ordered) - 1) // 2]


class ScalingWorkChain(WorkChain):
    """Seconds per MD step of one model against the number of atoms, one short MD job per supercell."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('model', valid_type=MlffModel, help='The model whose MD cost is measured.')
        spec.input('structure', valid_type=orm.StructureData, help='The cell the supercells repeat.')
        spec.input('supercells', valid_type=orm.List, help='Repetitions [n1, n2, n3] per size.')
        spec.input('parameters', valid_type=orm.Dict, help='MD parameters of every job (engine included).')
        spec.input(
            'replicas_per_batch',
            valid_type=orm.List,
            required=False,
            help='Replicas held by one torch-sim worker, one job per value at the probe size.',
        )
        spec.input(
            'threads_per_worker',
            valid_type=orm.List,
            required=False,
            help='Threads of one worker process, one job per value at the probe size.',
        )
        spec.expose_inputs(
            MdEnsembleCalculation, namespace='md', exclude=('model', 'structure', 'supercell', 'parameters')
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, while_(cls.more_jobs)(cls.run_job, cls.inspect_job), cls.summarise)
        spec.output('scaling', valid_type=orm.Dict, help='Cost per size (s/step, atom-steps/s, MB), slope, 10⁶ steps.')
        spec.output('batching', valid_type=orm.Dict, required=False, help='Throughput against replicas per batch.')
        spec.output('threading', valid_type=orm.Dict, required=False, help='Throughput against threads per worker.')
        spec.exit_code(400, 'ERROR_MD_FAILED', message='The MD job of a size failed: {message}')

    @classmethod
    def get_builder_from_model(
        cls,
        model: MlffModel,
        structure: orm.StructureData,
        code: orm.AbstractCode,
        *,
        engine: str = 'ase',
        atoms: list[int] | None = None,
        supercells: list[list[int]] | None = None,
        md: dict | None = None,
        replicas_per_batch: list[int] | None = None,
        threads_per_worker: list[int] | None = None,
    ):
        """A builder whose sizes and MD parameters are resolved here.

        :param atoms: target atom counts (default: the cell and about 8×, 32× and 64× it); ignored with
            ``supercells``.
        :param md: overrides of :data:`DEFAULT_MD`.
        :param replicas_per_batch: optional, replicas per torch-sim worker measured at the probe size.
        :param threads_per_worker: optional, threads per worker process measured at the probe size.
        """
        n_cell = len(structure.sites)
        if supercells is None:
            supercells = supercells_for(n_cell, atoms or [n_cell, 8 * n_cell, 32 * n_cell, 64 * n_cell])
        builder = cls.get_builder()
        builder.model = model
        builder.structure = structure
        builder.supercells = orm.List([list(map(int, r)) for r in supercells])
        builder.parameters = orm.Dict({**DEFAULT_MD, **(md or {}), 'engine': engine})
        builder.md.code = code
        builder.md.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        if replicas_per_batch:
            builder.replicas_per_batch = orm.List([int(n) for n in replicas_per_batch])
        if threads_per_worker:
            builder.threads_per_worker = orm.List([int(n) for n in threads_per_worker])
        return builder

    def setup(self):
        """Plan the jobs: every size, then the optional dimensions at the probe size."""
        repeats = self.inputs.supercells.get_list()
        self.ctx.jobs = [('size', repeat, {}) for repeat in sorted(repeats, key=lambda r: r[0] * r[1] * r[2])]
        probe = probe_size(repeats)
        for replicas in self.inputs.replicas_per_batch.get_list() if 'replicas_per_batch' in self.inputs else []:
            self.ctx.jobs.append(('batching', probe, {'n_replicas': replicas, 'seeds': None}))
        for threads in self.inputs.threads_per_worker.get_list() if 'threads_per_worker' in self.inputs else []:
            self.ctx.jobs.append(('threading', probe, {'threads_per_worker': threads}))
        self.ctx.index = 0
        self.ctx.run_infos = {'size': {}, 'batching': {}, 'threading': {}}

    def more_jobs(self) -> bool:
        return self.ctx.index < len(self.ctx.jobs)

    def run_job(self):
        kind, repeat, overrides = self.ctx.jobs[self.ctx.index]
        inputs = self.exposed_inputs(MdEnsembleCalculation, 'md')
        parameters = self.inputs.parameters
        if overrides:
            parameters = orm.Dict({**parameters.get_dict(), **overrides})
            if 'threads_per_worker' in overrides:  # the scheduler gives the worker that many cores
                options = dict(inputs.get('metadata', {}).get('options', {}))
                resources = {**options.get('resources', {}), 'num_cores_per_mpiproc': overrides['threads_per_worker']}
                inputs['metadata'] = {**inputs.get('metadata', {}), 'options': {**options, 'resources': resources}}
        if parameters['engine'] == ENGINE_LAMMPS:
            node = self.submit(
                LammpsEnsembleWorkChain,
                code=inputs['code'],
                model=self.inputs.model,
                structure=self.inputs.structure,
                supercell=orm.List(repeat),
                parameters=parameters,
                options=scheduler_options(inputs),
            )
        else:
            node = self.submit(
                MdEnsembleCalculation,
                model=self.inputs.model,
                structure=self.inputs.structure,
                supercell=orm.List(repeat),
                parameters=parameters,
                **inputs,
            )
        n_atoms = len(self.inputs.structure.sites) * repeat[0] * repeat[1] * repeat[2]
        what = ', '.join(f'{key} {value}' for key, value in overrides.items() if value is not None)
        job = f'job {self.ctx.index + 1}/{len(self.ctx.jobs)} ({kind}{": " + what if what else ""})'
        self.report(f'{job}: {n_atoms} atoms, launched {node.process_label}<{node.pk}>')
        return ToContext(job=node)

    def inspect_job(self):
        node = self.ctx.job
        if 'run_info' not in node.outputs or not node.is_finished_ok:
            return self.exit_codes.ERROR_MD_FAILED.format(
                message=f'{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message}'
            )
        kind = self.ctx.jobs[self.ctx.index][0]
        info = node.outputs.run_info
        timing = info['timing']
        rate = timing.get('production_atom_steps_per_replica_s') or timing.get('atom_steps_per_replica_s')
        if not rate:  # e.g. a LAMMPS job whose log was not retrieved: no loop time
            return self.exit_codes.ERROR_MD_FAILED.format(
                message=f'{node.process_label}<{node.pk}> finished without a measured rate (no timing in run_info)'
            )
        self.report(f'{info["n_atoms"]} atoms: {rate:.4g} atom-steps/s ({info["n_atoms"] / rate * 1000:.3g} ms/step)')
        self.ctx.run_infos[kind][f'{kind}_{self.ctx.index}'] = info
        self.ctx.index += 1
        return None

    def summarise(self):
        summary = scaling_summary(**self.ctx.run_infos['size'])
        self.out('scaling', summary)
        for kind, key in (('batching', 'n_replicas'), ('threading', 'threads_per_worker')):
            if self.ctx.run_infos[kind]:
                varied = variation_summary(dimension=orm.Str(key), **self.ctx.run_infos[kind])
                self.out(kind, varied)
                rows = ', '.join(
                    f'{v}: {r:.4g} ({x:.2f}×)'
                    for v, r, x in zip(varied['values'], varied['atom_steps_per_s'], varied['speedup'], strict=True)
                )
                self.report(f'{kind} at {varied["n_atoms"]} atoms, atom-steps/s per worker by {key}: {rows}')
        self.report(
            f'log-log slope of the cost {summary["loglog_slope"]:.2f} (1: O(N)) over {summary["n_atoms"][0]}–'
            f'{summary["n_atoms"][-1]} atoms on {summary["hardware"].get("cpu_model", "?")}'
        )
