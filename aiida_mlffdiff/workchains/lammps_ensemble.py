"""``LammpsEnsembleWorkChain`` (``mlffdiff.lammps_ensemble``): MD replicas of a DeePMD model run by LAMMPS.

The LAMMPS path of the MD ensemble: the same inputs and outputs as
:class:`~aiida_mlffdiff.calculations.md_ensemble.MdEnsembleCalculation` (``structure``, optional ``supercell``,
``model``, ``parameters`` validated by the same ``md_parameters``; outputs ``msd``, ``thermo``, ``run_info``), but
each replica is one aiida-lammps ``lammps.raw`` job running ``pair_style deepmd`` (the LAMMPS code of the
``lammps`` engine environment, or any LAMMPS built with the DeePMD plugin).

Steps:

1. ``write_lammps_inputs`` (calcfunction): the data file of the MD cell, the model file and one script per
   replica (:mod:`aiida_mlffdiff.calculations.lammps_script`).
2. One ``lammps.raw`` job per replica (all submitted at once), one MPI process and one thread each
   (``OMP_NUM_THREADS=1`` and the DeePMD thread variables, unless ``options.environment_variables`` sets them).
3. ``msd_from_lammps_dumps`` (calcfunction) reads the retrieved dumps, flags blown-up replicas with the ASE
   driver's checks and makes the outputs with the MD ensemble parser's helpers.

Parameters: those of MdEnsembleCalculation; ``engine`` may be omitted or ``'lammps'``.

Submission errors: a model that is not DeePMD, a code of another engine environment, and every error of
MdEnsembleCalculation (bad parameters, species, non-periodic cell, overlapping atoms, corrupted model file).

Exit codes (the same numbers and labels as MdEnsembleCalculation): 300 ``ERROR_MISSING_OUTPUT`` (the dumps could
not be turned into outputs), 330 ``ERROR_ALL_REPLICAS_FAILED`` (``thermo`` attached), 340
``ERROR_TOO_MANY_FAILED_REPLICAS`` (``thermo`` and the ``msd`` of the OK replicas attached).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction
from aiida.plugins import CalculationFactory

from ..calculations.lammps_script import (
    DATA_FILE,
    DUMP_FILE,
    EQUILIBRATION_FILE,
    MODEL_FILE,
    THERMO_FILE,
    lammps_data,
    lammps_script,
    type_order,
)
from ..calculations.md_ensemble import (
    MdEnsembleCalculation,
    build_atoms,
    code_environment,
    md_parameters,
    md_problem,
    validate_supercell,
)
from ..data.mlff_model import MlffModel
from ..environments.engines import thread_variables
from ..parsers.lammps_dump import LAMMPS_STDOUT, file_content, replica_from_files
from ..parsers.md_ensemble import ensemble_msd, ensemble_thermo, failure_summary, too_many_failed

__all__ = ('LammpsEnsembleWorkChain', 'lammps_md_parameters', 'msd_from_lammps_dumps', 'write_lammps_inputs')

ENGINE = 'lammps'


def without_engine(raw: dict | None) -> dict:
    """The MD parameters without ``engine``, which must be omitted or ``'lammps'`` (else ValueError)."""
    raw = dict(raw or {})
    engine = raw.pop('engine', ENGINE)
    if engine != ENGINE:
        raise ValueError(f'invalid md_ensemble parameters: LammpsEnsembleWorkChain runs engine lammps, not {engine!r}.')
    return raw


def lammps_md_parameters(raw: dict | None, symbols) -> dict:
    """The MD parameters validated as MdEnsembleCalculation's (``engine`` omitted or ``'lammps'``), or ValueError."""
    return md_parameters({**without_engine(raw), 'engine': ENGINE}, symbols, calcjob=False)


#: What each lammps.raw job records of the machine it ran on (CPU model, logical cores, architecture, host name: the
#: keys of the ASE driver's ``hardware``), written by its job script before LAMMPS starts.
HARDWARE_FILE = '_mlffdiff_hardware.txt'
HARDWARE_SCRIPT = (
    "{ grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; getconf _NPROCESSORS_ONLN; "
    f'uname -m; uname -n; }} > {HARDWARE_FILE} 2>/dev/null || true'
)


def read_hardware(text: str | None) -> dict:
    """The ``hardware`` record (``cpu_model``, ``logical_cores``, ``machine``, ``node``) of a job's
    :data:`HARDWARE_FILE`; empty when it is missing."""
    lines = [line.strip() for line in (text or '').splitlines()]
    if len(lines) < 4:
        return {}
    cores = int(lines[1]) if lines[1].isdigit() else None
    return {'cpu_model': lines[0], 'logical_cores': cores, 'machine': lines[2], 'node': lines[3]}


def validate_lammps_inputs(value, _=None) -> str | None:
    """MdEnsembleCalculation's submission checks, plus: a DeePMD model and a LAMMPS code."""
    model, code = value.get('model'), value.get('code')
    if model is not None and model.architecture != 'deepmd':
        return (
            f'LAMMPS runs only DeePMD models here (pair_style deepmd); {model.describe()} is {model.architecture!r}: '
            'use MdEnsembleCalculation (engine ase) for it.'
        )
    engine = code_environment(code)
    if engine not in (None, ENGINE):
        return f'code {code.full_label} runs the {engine!r} environment, not a LAMMPS build (the {ENGINE!r} one).'
    parameters = value.get('parameters')
    try:
        raw = without_engine(parameters.get_dict() if parameters is not None else None)
    except ValueError as exception:
        return str(exception)
    model, structure, supercell = value.get('model'), value.get('structure'), value.get('supercell')
    if model is None or structure is None or validate_supercell(supercell):
        return None  # the ports report it
    problem, _ = md_problem(model, structure, supercell, {**raw, 'engine': ENGINE}, calcjob=False)
    if problem:
        return problem
    try:
        model.verify_checksum()
    except ValueError as exception:
        return str(exception)
    return None


@calcfunction
def write_lammps_inputs(
    structure: orm.StructureData, model: MlffModel, parameters: orm.Dict, supercell: orm.List | None = None
) -> dict:
    """``data_file``, ``model_file`` and one ``script_<i>`` per replica (SinglefileData) of a LAMMPS ensemble."""
    import io

    atoms = build_atoms(structure, supercell)
    values = lammps_md_parameters(parameters.get_dict(), atoms.get_chemical_symbols())
    types = type_order(model.species, atoms.get_chemical_symbols())
    outputs = {
        'data_file': orm.SinglefileData(io.BytesIO(lammps_data(atoms, types).encode()), filename=DATA_FILE),
        'model_file': orm.SinglefileData(
            io.BytesIO(model.base.repository.get_object_content(model.filename, mode='rb')), filename=MODEL_FILE
        ),
    }
    for index, seed in enumerate(values['seeds']):
        script = lammps_script(values, types, int(seed))
        outputs[f'script_{index}'] = orm.SinglefileData(io.BytesIO(script.encode()), filename='input.in')
    return outputs


class LammpsEnsembleWorkChain(WorkChain):
    """Independent MD replicas of one DeePMD model at one temperature with LAMMPS; MSD of the mobile species."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('code', valid_type=orm.AbstractCode, help='LAMMPS with pair_style deepmd (lammps.raw).')
        # The inputs and outputs of MdEnsembleCalculation (structure, supercell, model, parameters → msd, thermo,
        # run_info), so that the two MD paths are interchangeable in a work chain.
        spec.expose_inputs(MdEnsembleCalculation, include=('model', 'structure', 'supercell', 'parameters'))
        spec.inputs['model'].help = 'The DeePMD model (frozen .pth) that drives the MD.'
        spec.input(
            'options',
            valid_type=dict,
            non_db=True,
            required=False,
            help='metadata.options of every lammps.raw job (resources, max_wallclock_seconds, ...).',
        )
        spec.inputs.validator = validate_lammps_inputs
        spec.outline(cls.write_inputs, cls.run_replicas, cls.collect)
        spec.expose_outputs(MdEnsembleCalculation, include=('msd', 'thermo', 'run_info'))
        spec.outputs['run_info'].help = 'LAMMPS version, loop times (s).'
        spec.exit_code(300, 'ERROR_MISSING_OUTPUT', message='The LAMMPS outputs could not be read: {message}')
        spec.exit_code(330, 'ERROR_ALL_REPLICAS_FAILED', message='Every replica failed: {message}')
        spec.exit_code(
            340,
            'ERROR_TOO_MANY_FAILED_REPLICAS',
            message='More replicas failed than max_failed_fraction allows (MSD of the OK ones attached): {message}',
        )

    def write_inputs(self):
        """Write the data file, model file and scripts (provenance: a calcfunction)."""
        kwargs = {'supercell': self.inputs.supercell} if 'supercell' in self.inputs else {}
        self.ctx.files = write_lammps_inputs(self.inputs.structure, self.inputs.model, self.inputs.parameters, **kwargs)

    def job_options(self) -> dict:
        """``metadata.options`` of a replica: one process, one thread, the DeePMD thread variables."""
        options = dict(self.inputs.get('options', None) or {})
        options.setdefault('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        options.setdefault('withmpi', False)
        user = options.get('environment_variables') or {}
        options['environment_variables'] = {**thread_variables(ENGINE, 1, user), **user}
        options['prepend_text'] = '\n'.join(filter(None, [options.get('prepend_text'), HARDWARE_SCRIPT]))
        return options

    def run_replicas(self):
        """Submit one lammps.raw job per replica, all at once."""
        calculation = CalculationFactory('lammps.raw')
        files = self.ctx.files
        options = self.job_options()
        retrieve = [DUMP_FILE, THERMO_FILE, EQUILIBRATION_FILE, HARDWARE_FILE]
        futures = {}
        scripts = sorted((key for key in files if key.startswith('script_')), key=lambda k: int(k.split('_')[1]))
        for key in scripts:
            index = int(key.split('_')[1])
            builder = calculation.get_builder()
            builder.code = self.inputs.code
            builder.script = files[key]
            builder.files = {'data': files['data_file'], 'model': files['model_file']}
            builder.settings = orm.Dict({'additional_retrieve_list': retrieve})
            builder.metadata.options = options
            builder.metadata.call_link_label = f'replica_{index}'
            futures[f'replica_{index}'] = self.submit(builder)
        self.report(f'submitted {len(futures)} LAMMPS replicas: {", ".join(str(f.pk) for f in futures.values())}')
        return ToContext(**futures)

    def collect(self):
        """Turn the retrieved dumps into ``msd``, ``thermo`` and ``run_info``."""
        atoms = build_atoms(self.inputs.structure, self.inputs.get('supercell'))
        values = lammps_md_parameters(self.inputs.parameters.get_dict(), atoms.get_chemical_symbols())
        names = sorted((k for k in self.ctx if k.startswith('replica_')), key=lambda k: int(k.split('_')[1]))
        jobs, folders = {}, {}
        for name in names:
            node = self.ctx[name]
            index = int(name.split('_')[1])
            jobs[name] = {
                'pk': node.pk,
                'seed': int(values['seeds'][index]),
                'exit_status': node.exit_status,
                'exit_message': node.exit_message or ('' if node.is_finished_ok else f'process {node.process_state}'),
            }
            if 'retrieved' in node.outputs:
                folders[name] = node.outputs.retrieved
            if not node.is_finished_ok:
                self.report(f'{name} (pk {node.pk}) failed: [{node.exit_status}] {node.exit_message}')
        kwargs = {'supercell': self.inputs.supercell} if 'supercell' in self.inputs else {}
        try:
            outputs = msd_from_lammps_dumps(
                self.inputs.structure, self.inputs.parameters, orm.Dict(jobs), **kwargs, **folders
            )
        except Exception as exception:  # the calcfunction is excepted: its failure is a missing output
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(message=f'{type(exception).__name__}: {exception}')
        for key, node in outputs.items():
            self.out(key, node)
        thermo = outputs['thermo'].get_dict()
        summary = failure_summary(thermo)
        if 'msd' not in outputs:
            return self.exit_codes.ERROR_ALL_REPLICAS_FAILED.format(message=summary)
        if too_many_failed(thermo):
            return self.exit_codes.ERROR_TOO_MANY_FAILED_REPLICAS.format(
                message=f'{thermo["n_excluded"]} of {thermo["n_replicas"]} failed '
                f'(> {thermo["max_failed_fraction"]:g}): {summary}'
            )
        if thermo['n_excluded']:
            self.report(f'excluded replicas: {summary}')
        return None


@calcfunction
def msd_from_lammps_dumps(structure: orm.StructureData, parameters: orm.Dict, jobs: orm.Dict, **kwargs) -> dict:
    """``msd`` (MsdData, if any replica is OK), ``thermo`` and ``run_info`` Dicts of a LAMMPS ensemble.

    :param structure: the structure the replicas ran (repeated by the optional ``supercell`` List input).
    :param parameters: the ensemble's MD parameters (validated again here; defaults completed).
    :param jobs: per replica ``replica_<i>``: ``seed``, ``exit_status``, ``exit_message``, ``pk``.
    :param kwargs: ``supercell`` (List, optional) and ``replica_<i>`` (FolderData: the retrieved files of the
        replicas that got that far).
    """
    supercell = kwargs.get('supercell')
    atoms = build_atoms(structure, supercell)
    values = lammps_md_parameters(parameters.get_dict(), atoms.get_chemical_symbols())
    job_info = jobs.get_dict()
    names = sorted(job_info, key=lambda name: int(name.rsplit('_', 1)[-1]))
    results, machines = [], []
    for name in names:
        job = job_info[name]
        folder = kwargs.get(name)
        machines.append(read_hardware(file_content(folder, HARDWARE_FILE)))
        files = {key: file_content(folder, key) for key in (DUMP_FILE, THERMO_FILE, EQUILIBRATION_FILE, LAMMPS_STDOUT)}
        message = '' if job.get('exit_status') == 0 else f'job {job.get("pk")}: {job.get("exit_message") or "failed"}'
        if folder is None:
            result = replica_from_files({}, atoms, values, job['seed'], message)
            result.update(status='error', message=message or 'nothing retrieved')
        else:
            result = replica_from_files(files, atoms, values, job['seed'], message)
        results.append(result)

    stride_ps = round(values['sampling_interval_fs'] / values['timestep_fs']) * values['timestep_fs'] / 1000.0
    n_frames = results[0]['positions'].shape[0]
    arrays = {
        'positions_A': np.stack([r['positions'] for r in results]),
        'framework_com_A': np.stack([r['com'] for r in results]),
        'time_ps': np.arange(n_frames) * stride_ps,
        'status': np.array([r['status'] for r in results]),
        'n_frames_done': np.array([r['n_frames_done'] for r in results], dtype=np.int64),
        'temperature_mean_K': np.array([r['temperature_mean_K'] for r in results]),
        'temperature_std_K': np.array([r['temperature_std_K'] for r in results]),
        'energy_drift_eV_atom_ps': np.array([r['energy_drift_eV_atom_ps'] for r in results]),
        'seeds': np.array([r['seed'] for r in results], dtype=np.int64),
    }
    messages = {i: r['message'] for i, r in enumerate(results)}
    thermo, ok = ensemble_thermo(arrays, messages, float(values['max_failed_fraction']))
    loop_s = [r['lammps']['loop_s'] for r in results]
    atom_steps = [r['lammps']['steps'] * r['lammps']['atoms'] for r in results]
    total_loop = sum(loop_s)
    run_info = {
        'engine': 'lammps',
        'lammps_version': next((r['lammps']['version'] for r in results if r['lammps']['version']), ''),
        'n_atoms': len(atoms),
        'replicas': [
            {
                'index': i,
                'pk': job_info[name].get('pk'),
                'seed': results[i]['seed'],
                'status': results[i]['status'],
                'loop_s': loop_s[i],
                'md_steps': results[i]['lammps']['steps'],
                'processes': results[i]['lammps']['processes'],
            }
            for i, name in enumerate(names)
        ],
        'atom_steps': sum(atom_steps),
        'hardware': next((machine for machine in machines if machine), {}),
        'peak_rss_MB': {
            f'replica_{i}': r['lammps']['peak_rss_MB'] for i, r in enumerate(results) if r['lammps'].get('peak_rss_MB')
        },
        'timing': {
            'loop_s': total_loop,
            'atom_steps_per_replica_s': sum(atom_steps) / total_loop if total_loop > 0 else None,
        },
    }
    outputs = {'thermo': orm.Dict(thermo), 'run_info': orm.Dict(run_info)}
    if ok:
        source = f'LammpsEnsembleWorkChain ({len(ok)} of {len(results)} replicas): jobs ' + ', '.join(
            str(job_info[name].get('pk')) for name in names
        )
        outputs['msd'] = ensemble_msd(arrays, ok, values, float(atoms.get_volume()), source)
    return outputs
