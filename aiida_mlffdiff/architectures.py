"""The MLFF architectures: one record each, the single home of what the rest of the package knows about them.

Adding an architecture is one :class:`Architecture` record here, plus its training writer
(``calculations/writers``, for a trainable one) and its training-log reader (``parsers/train_logs.py``); its engine
environment is a spec in ``environments/engines.py``. The stand-alone driver scripts (``drivers/``) cannot import
the package and keep their own table of packages, checked against these records by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ('ARCHITECTURES', 'TRAINABLE', 'Architecture', 'get_architecture', 'receptive_field_A')


@dataclass(frozen=True)
class Architecture:
    """What the package needs to know about one MLFF architecture."""

    #: Short name, as in ``MlffModel.architecture`` (lower case).
    name: str
    #: The engine environment whose python loads its models (``environments/engines.py``).
    environment: str
    #: Importable module and the distribution whose version a run records.
    package: tuple[str, str]
    #: Executables of the environment a study needs for it, by role: ``train``, ``python``, ``compile``.
    executables: dict[str, str] = field(default_factory=lambda: {'python': 'python'})
    #: Whether the plugin trains it (a training writer exists); else it only comes pretrained.
    trainable: bool = True
    #: Whether the torch-sim engine runs it (environment ``torchsim-<name>``).
    torchsim: bool = False
    #: The measured fastest MD engine on CPU, 1 thread per process (docs/md_engines.md) ...
    default_md_engine: str = 'ase'
    #: ... up to this many atoms per replica, above which batching no longer pays (then ``ase``).
    batch_pays_up_to_atoms: int = 0
    #: Training parameter that counts the message-passing layers (None: a local descriptor, one cutoff deep) ...
    layers_key: str | None = None
    #: ... and its default in the training writer (checked against the writers by the tests).
    default_layers: int = 1


ARCHITECTURES: dict[str, Architecture] = {
    record.name: record
    for record in (
        Architecture(
            'mace',
            environment='mace',
            package=('mace', 'mace-torch'),
            executables={'train': 'train', 'python': 'python'},
            torchsim=True,
            layers_key='num_interactions',
            default_layers=2,
        ),
        # Batching pays for NequIP and DeePMD on CPU up to the sizes below (NequIP at 416 atoms: a tie; DeePMD at
        # 416 atoms: ASE ≈ 4 100-5 600 atom-steps per CPU-second against torch-sim's ≈ 2 100).
        Architecture(
            'nequip',
            environment='nequip',
            package=('nequip', 'nequip'),
            executables={'train': 'train', 'python': 'python', 'compile': 'compile'},
            torchsim=True,
            default_md_engine='torchsim',
            batch_pays_up_to_atoms=416,
            layers_key='num_layers',
            default_layers=3,
        ),
        Architecture(
            'deepmd',
            environment='deepmd',
            package=('deepmd', 'deepmd-kit'),
            executables={'train': 'dp', 'python': 'python'},
            torchsim=True,
            default_md_engine='torchsim',
            batch_pays_up_to_atoms=200,
        ),
        Architecture('chgnet', environment='pretrained', package=('chgnet', 'chgnet'), trainable=False),
        Architecture('sevenn', environment='pretrained', package=('sevenn', 'sevenn'), trainable=False),
    )
}
#: The architectures the plugin trains.
TRAINABLE: tuple[str, ...] = tuple(name for name, record in ARCHITECTURES.items() if record.trainable)


def get_architecture(name: str) -> Architecture:
    """The record of ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return ARCHITECTURES[str(name).strip().lower()]
    except KeyError:
        raise ValueError(f'unknown architecture {name!r}: choose one of {", ".join(ARCHITECTURES)}.') from None


def receptive_field_A(architecture: str, cutoff_A: float, parameters: dict | None = None) -> float:
    """How far (Å) an atom's energy reaches: the cutoff times the message-passing layers (``cutoff_A`` for a local
    descriptor such as DeePMD's ``se_e2_a``/``se_atten_v2``). The force on an atom then depends on atoms up to twice
    this distance (the locality test's 2 × receptive field).

    :param parameters: the training parameters of the model (the layer count, else the writer's default).
    """
    record = get_architecture(architecture)
    if record.layers_key is None:
        return float(cutoff_A)
    layers = (parameters or {}).get(record.layers_key, record.default_layers)
    return float(cutoff_A) * int(layers)
