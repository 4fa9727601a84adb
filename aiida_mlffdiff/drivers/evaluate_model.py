#!/usr/bin/env python
"""Evaluate an MLFF model on every configuration of an extxyz file (stand-alone driver, no AiiDA import).

Shipped into a CalcJob's folder and run by the python of the ENGINE environment (mace, nequip, deepmd or
the pretrained one with chgnet + sevenn); it needs only numpy, ase, torch and the engine's package::

    python evaluate_model.py --architecture mace --model model_compiled.model --data dataset.extxyz
    python evaluate_model.py --architecture chgnet --pretrained 0.3.0 --data dataset.extxyz \
        --weights chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar --weights-sha256 d14ab7c0...

A pretrained model is loaded by the package's own name (``CHGNet.load(model_name=...)``, ``SevenNetCalculator(name,
modal=...)``); with ``--weights`` (the weights file inside the installed package) and ``--weights-sha256`` the
driver first checks that the file the package will load is the one the model node records (exit 3 otherwise).

Writes

- ``predictions.npz``: ``energy_eV`` (n_structures,), ``forces_eV_A`` (n_atoms_total, 3, configurations
  concatenated in file order), ``stress_eV_A3`` (n_structures, 6; Voigt xx yy zz yz xz xy, ASE sign convention;
  only if the model gives a stress for every configuration), ``n_atoms`` (n_structures,), ``species``
  (n_atoms_total,) and ``atomic_numbers`` (n_atoms_total,);
- ``evaluate.json``: ``status`` (``ok`` or the failure kind), ``message``, versions (python, numpy, ase,
  torch, engine package), thread counts and timings (s).

Exit status: 0 success, 2 bad command line, 3 the model (or its engine package) does not load, 4 the data
file cannot be read, 5 the evaluation raised. On failure the last line of stderr is ``ERROR: ...``, one
line that says what went wrong, and ``evaluate.json`` carries the same message.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_MODEL_LOAD_FAILED = 3
EXIT_DATA_READ_FAILED = 4
EXIT_EVALUATION_FAILED = 5

#: architecture → (importable module, distribution whose version is recorded)
ENGINE_PACKAGES = {
    'mace': ('mace', 'mace-torch'),
    'nequip': ('nequip', 'nequip'),
    'deepmd': ('deepmd', 'deepmd-kit'),
    'chgnet': ('chgnet', 'chgnet'),
    'sevenn': ('sevenn', 'sevenn'),
}
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')


class DriverError(Exception):
    """A failure with a one-line explanation and the exit status and status word that go with it."""

    def __init__(self, status: str, exit_code: int, message: str):
        super().__init__(message)
        self.status = status
        self.exit_code = exit_code
        self.message = message


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--architecture', required=True, choices=sorted(ENGINE_PACKAGES))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', type=Path, help='model file (MACE compiled, NequIP .pt2, DeePMD .pth, ...)')
    source.add_argument('--pretrained', help='name of a model shipped by the package, e.g. 0.3.0 (chgnet), 7net-0')
    parser.add_argument('--modal', help='fidelity head of a multi-fidelity pretrained model (e.g. PBE, R2SCAN)')
    parser.add_argument('--weights', help='pretrained: the weights file inside the installed package (for its check)')
    parser.add_argument('--weights-sha256', help='pretrained: the sha256 the weights file must have')
    parser.add_argument('--data', type=Path, required=True, help='extxyz file with the configurations')
    parser.add_argument('--output', type=Path, default=Path('predictions.npz'))
    parser.add_argument('--info', type=Path, default=Path('evaluate.json'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1, help='torch intra-op threads (default 1)')
    return parser.parse_args(argv)


def set_threads(threads: int) -> None:
    """Pin thread counts before torch is imported (variables) and after (torch's own setting)."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    try:
        import torch
    except ImportError as exception:
        raise DriverError(
            'model_load_failed',
            EXIT_MODEL_LOAD_FAILED,
            f'torch cannot be imported by {sys.executable} ({exception}): run this driver with the python of an '
            'engine environment.',
        ) from exception

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set (parallel work has started): harmless
        torch.set_num_interop_threads(1)


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ''


def import_engine(architecture: str):
    module, distribution = ENGINE_PACKAGES[architecture]
    try:
        return __import__(module)
    except Exception as exception:
        raise DriverError(
            'model_load_failed',
            EXIT_MODEL_LOAD_FAILED,
            f'the {architecture} engine package `{module}` ({distribution}) cannot be imported by {sys.executable}: '
            f'{type(exception).__name__}: {exception}. Is this the python of the {architecture} environment?',
        ) from exception


def _load_torch_module(path: Path, device: str):
    """A TorchScript archive (MACE's ``*_compiled.model``) or, failing that, a pickled torch module."""
    import torch

    try:
        return torch.jit.load(str(path), map_location=device)
    except RuntimeError as scripted:
        try:
            return torch.load(str(path), map_location=device, weights_only=False)
        except Exception as pickled:
            first = str(scripted).strip().splitlines()[0] if str(scripted).strip() else ''
            raise RuntimeError(
                f'neither a TorchScript archive ({first}) nor a pickled torch module ({type(pickled).__name__}: '
                f'{pickled})'
            ) from pickled


def _pretrained_name(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


def package_file(relative: str) -> Path:
    """The absolute path of ``relative`` (``<package>/…``) inside the installed package ``<package>``."""
    import importlib.util

    package, _, rest = relative.partition('/')
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DriverError('model_load_failed', EXIT_MODEL_LOAD_FAILED, f'package {package} is not installed here.')
    return Path(next(iter(spec.submodule_search_locations))) / rest


def verify_weights(relative: str | None, sha256: str | None) -> None:
    """Check that the pretrained weights file the package loads is the one recorded (sha256); exit 3 otherwise."""
    if not relative or not sha256:
        return
    import hashlib

    path = package_file(relative)
    if not path.is_file():
        raise DriverError(
            'model_load_failed', EXIT_MODEL_LOAD_FAILED,
            f'the pretrained weights {relative} are not in this environment ({sys.executable}).',
        )  # fmt: skip
    digest = hashlib.sha256()
    with path.open('rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise DriverError(
            'model_load_failed', EXIT_MODEL_LOAD_FAILED,
            f'the pretrained weights {relative} have sha256 {digest.hexdigest()}, the model node records {sha256}: '
            'this environment installs another release of the package than the one the model was recorded with.',
        )  # fmt: skip


def build_calculator(
    architecture: str, model: Path | None, pretrained: str | None, device: str, modal: str | None = None
):
    """The ASE calculator for the architecture, from a model file or a model name shipped by the package (``modal``:
    the fidelity head of a multi-fidelity SevenNet model)."""
    if architecture == 'mace':
        from mace.calculators import MACECalculator

        return MACECalculator(models=[_load_torch_module(model, device)], device=device)
    if architecture == 'nequip':
        try:  # nequip >= 0.17 (the old path warns and will go)
            from nequip.integrations.ase import NequIPCalculator
        except ImportError:
            from nequip.ase import NequIPCalculator
        return NequIPCalculator.from_compiled_model(str(model), device=device)
    if architecture == 'deepmd':
        from deepmd.calculator import DP

        return DP(model=str(model))  # the device follows CUDA_VISIBLE_DEVICES; DP takes no device argument
    if architecture == 'chgnet':
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        if pretrained is not None:
            network = CHGNet.load(model_name=_pretrained_name(pretrained, 'chgnet-'), use_device=device, verbose=False)
        else:
            network = CHGNet.from_file(str(model))
        return CHGNetCalculator(model=network, use_device=device)
    if architecture == 'sevenn':
        from sevenn.calculator import SevenNetCalculator

        extra = {'modal': modal} if modal else {}
        return SevenNetCalculator(pretrained if pretrained is not None else str(model), device=device, **extra)
    raise ValueError(f'unknown architecture {architecture}')


def load_calculator(arguments: argparse.Namespace):
    if arguments.model is not None and not arguments.model.is_file():
        raise DriverError('model_load_failed', EXIT_MODEL_LOAD_FAILED, f'model file {arguments.model} does not exist.')
    if arguments.pretrained is None and arguments.model is None:
        raise DriverError('model_load_failed', EXIT_MODEL_LOAD_FAILED, 'neither --model nor --pretrained given.')
    import_engine(arguments.architecture)
    verify_weights(arguments.weights, arguments.weights_sha256)
    try:
        return build_calculator(
            arguments.architecture, arguments.model, arguments.pretrained, arguments.device, arguments.modal
        )
    except Exception as exception:
        traceback.print_exc()
        what = arguments.model if arguments.model is not None else f'pretrained model {arguments.pretrained}'
        detail = str(exception).strip().splitlines()[0] if str(exception).strip() else ''
        raise DriverError(
            'model_load_failed',
            EXIT_MODEL_LOAD_FAILED,
            f'{arguments.architecture} could not load {what} with {sys.executable} '
            f'(torch {version("torch")}, {ENGINE_PACKAGES[arguments.architecture][1]} '
            f'{version(ENGINE_PACKAGES[arguments.architecture][1])}): {type(exception).__name__}: {detail} '
            f'-- check that the file is a {arguments.architecture} model and that this is the environment '
            '(engine and torch version) that produced it.',
        ) from exception


def read_configurations(path: Path) -> list:
    import ase.io

    try:
        configurations = ase.io.read(str(path), index=':', format='extxyz')
    except Exception as exception:
        raise DriverError(
            'data_read_failed', EXIT_DATA_READ_FAILED, f'cannot read {path}: {type(exception).__name__}: {exception}'
        ) from exception
    if not configurations:
        raise DriverError('data_read_failed', EXIT_DATA_READ_FAILED, f'{path} holds no configuration.')
    return configurations


def evaluate(calculator, configurations: list) -> tuple[dict, dict]:
    """Energy, forces and (where the model gives one for every configuration) stress of each configuration."""
    import numpy as np
    from ase.calculators.calculator import PropertyNotImplementedError

    energies, forces, stresses, timings = [], [], [], []
    stress_available = True
    for index, atoms in enumerate(configurations):
        atoms.calc = calculator
        started = time.perf_counter()
        try:
            energies.append(float(atoms.get_potential_energy()))
            forces.append(np.asarray(atoms.get_forces(), dtype=float).reshape(len(atoms), 3))
            if stress_available and all(atoms.pbc):
                try:
                    stresses.append(np.asarray(atoms.get_stress(voigt=True), dtype=float).reshape(6))
                except (PropertyNotImplementedError, NotImplementedError, KeyError):
                    stress_available = False
            else:
                stress_available = False
        except Exception as exception:
            traceback.print_exc()
            raise DriverError(
                'evaluation_failed',
                EXIT_EVALUATION_FAILED,
                f'evaluating configuration {index} ({atoms.get_chemical_formula()}) raised '
                f'{type(exception).__name__}: {exception}',
            ) from exception
        timings.append(time.perf_counter() - started)
        atoms.calc = None
    arrays = {
        'energy_eV': np.asarray(energies, dtype=float),
        'forces_eV_A': np.concatenate(forces).astype(float),
        'n_atoms': np.asarray([len(atoms) for atoms in configurations], dtype=np.int64),
        'species': np.asarray([s for atoms in configurations for s in atoms.get_chemical_symbols()], dtype='<U3'),
        'atomic_numbers': np.concatenate([atoms.get_atomic_numbers() for atoms in configurations]).astype(np.int64),
    }
    if stress_available and len(stresses) == len(configurations):
        arrays['stress_eV_A3'] = np.stack(stresses)
    timing = {
        'evaluate_s': float(sum(timings)),
        'first_structure_s': float(timings[0]),
        'mean_structure_s': float(np.mean(timings)),
        'median_structure_s': float(np.median(timings)),
        'mean_structure_after_first_s': float(np.mean(timings[1:])) if len(timings) > 1 else float(timings[0]),
    }
    return arrays, timing


def versions(architecture: str) -> dict:
    distribution = ENGINE_PACKAGES[architecture][1]
    return {
        'python': platform.python_version(),
        'numpy': version('numpy'),
        'ase': version('ase'),
        'torch': version('torch'),
        'engine_package': distribution,
        'engine_version': version(distribution),
    }


def write_info(path: Path, info: dict) -> None:
    path.write_text(json.dumps(info, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    arguments = parse_args(argv)
    started = time.perf_counter()
    info = {
        'status': 'running',
        'message': '',
        'architecture': arguments.architecture,
        'model': str(arguments.model) if arguments.model is not None else None,
        'pretrained': arguments.pretrained,
        'modal': arguments.modal,
        'weights_sha256': arguments.weights_sha256,
        'device': arguments.device,
        'executable': sys.executable,
        'timing': {},
    }
    try:
        set_threads(arguments.threads)
        import torch

        info['threads'] = {
            'torch_intra_op': torch.get_num_threads(),
            'torch_inter_op': torch.get_num_interop_threads(),
            **{name: os.environ.get(name) for name in THREAD_VARIABLES},
        }
        info['versions'] = versions(arguments.architecture)
        configurations = read_configurations(arguments.data)
        loading = time.perf_counter()
        calculator = load_calculator(arguments)
        info['timing']['load_model_s'] = time.perf_counter() - loading
        arrays, timing = evaluate(calculator, configurations)
        info['timing'].update(timing)
    except DriverError as error:
        info.update(status=error.status, message=error.message)
        info['timing']['total_s'] = time.perf_counter() - started
        write_info(arguments.info, info)
        print(f'ERROR: {error.message}', file=sys.stderr, flush=True)
        return error.exit_code

    import numpy as np

    np.savez(arguments.output, **arrays)
    n_non_finite = int(sum(np.count_nonzero(~np.isfinite(a)) for k, a in arrays.items() if a.dtype.kind == 'f'))
    info.update(
        status='ok',
        message=f'{len(arrays["energy_eV"])} configurations, {len(arrays["species"])} atoms evaluated',
        n_structures=len(arrays['energy_eV']),
        n_atoms_total=len(arrays['species']),
        has_stress='stress_eV_A3' in arrays,
        n_non_finite_values=n_non_finite,
    )
    info['timing']['total_s'] = time.perf_counter() - started
    write_info(arguments.info, info)
    print(f'evaluate_model: {info["message"]} in {info["timing"]["evaluate_s"]:.2f} s', flush=True)
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
