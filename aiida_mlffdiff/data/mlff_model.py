"""``MlffModel``: a deployable machine-learned force field (file + architecture + species + cutoff + sha256)."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from aiida.orm import Data, QueryBuilder
from ase.data import chemical_symbols

from ..architectures import ARCHITECTURES as _REGISTRY

__all__ = (
    'ARCHITECTURES',
    'ENGINES',
    'MlffModel',
    'MlffModelError',
    'ModelChecksumError',
    'ModelEngineError',
    'file_sha256',
)

#: Network architectures a model can have.
ARCHITECTURES = tuple(_REGISTRY)
#: Engine environments that can load a model (see aiida_mlffdiff.environments.engines.ENGINES).
ENGINES = tuple(dict.fromkeys(record.environment for record in _REGISTRY.values()))


class MlffModelError(ValueError):
    """Invalid model metadata, or a model used for species it was not trained on."""


class ModelChecksumError(ValueError):
    """The stored model file no longer matches the sha256 recorded on the node."""


class ModelEngineError(ValueError):
    """A model loaded in an engine environment that cannot load it."""


def _stream_sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b''):
        digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    with open(path, 'rb') as handle:
        return _stream_sha256(handle)


def _architecture(value: str) -> str:
    name = str(value).strip().lower()
    if name not in ARCHITECTURES:
        raise MlffModelError(f'unknown architecture {value!r}: choose one of {", ".join(ARCHITECTURES)}.')
    return name


def _engine(value: str) -> str:
    name = str(value).strip().lower()
    if name not in ENGINES:
        raise MlffModelError(f'unknown engine environment {value!r}: choose one of {", ".join(ENGINES)}.')
    return name


def _species(species: Iterable[str]) -> list[str]:
    if isinstance(species, str) or species is None:
        raise MlffModelError(f'species must be a list of chemical symbols, e.g. ["Li", "S"], got {species!r}.')
    symbols = list(species)
    if not symbols:
        raise MlffModelError('species must not be empty: name the chemical symbols the model was trained on.')
    unknown = [s for s in symbols if not isinstance(s, str) or s not in chemical_symbols[1:]]
    if unknown:
        raise MlffModelError(f'species {unknown} are not chemical symbols.')
    return sorted(set(symbols))


def _cutoff(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise MlffModelError(f'cutoff_A must be a positive number of Å or None, got {value!r}.')
    return float(value)


def _optional_str(value, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise MlffModelError(f'{what} must be a string or None, got {value!r}.')
    return value


class MlffModel(Data):
    """A deployable MLFF: its file(s) in the node repository and what is needed to use it, as attributes.

    Attributes (queryable): ``architecture`` (mace, nequip, deepmd, chgnet, sevenn), ``species`` (sorted symbols),
    ``cutoff_A`` (Å or None), ``engine`` (the environment that loads it: mace, nequip, deepmd, pretrained),
    ``engine_version``, ``filename`` (main file, None for pretrained), ``sha256`` (of the main file, None for
    pretrained), ``pretrained``, ``model_name`` (pretrained models, e.g. 'chgnet-0.3.0', '7net-0'), ``target``
    (nequip-compile target, e.g. 'ase'; None otherwise), ``torch_version``, ``extra_files`` (names) and
    ``extra_sha256`` (name → sha256). A pretrained model also records where its weights come from: ``package_model``
    (the package's own name, e.g. '0.3.0' for CHGNet, '7net-mf-0'), ``modal`` (the fidelity head of a multi-fidelity
    model, e.g. 'PBE'), ``package_file`` (the weights file inside the distribution), ``sha256`` (of that file,
    checked by the engine driver before every run) and ``source`` (reference data, publication, licence).
    """

    def __init__(
        self,
        *,
        architecture: str,
        species: Sequence[str],
        engine: str,
        cutoff_A: float | None = None,
        engine_version: str = '',
        file: str | Path | None = None,
        model_name: str | None = None,
        target: str | None = None,
        torch_version: str | None = None,
        extra_files: Sequence[str | Path] | None = None,
        package_model: str | None = None,
        modal: str | None = None,
        package_file: str | None = None,
        weights_sha256: str | None = None,
        source: str | None = None,
        **kwargs,
    ):
        """A model from ``file`` or, without a file, a pretrained model called ``model_name``; see the class methods."""
        super().__init__(**kwargs)
        architecture = _architecture(architecture)
        species = _species(species)
        engine = _engine(engine)
        cutoff = _cutoff(cutoff_A)
        if not isinstance(engine_version, str):
            raise MlffModelError(f'engine_version must be a string, got {engine_version!r}.')
        target = _optional_str(target, 'target')
        if target is not None and architecture != 'nequip':
            raise MlffModelError(f'target (of nequip-compile) only applies to nequip models, not to {architecture}.')
        torch_version = _optional_str(torch_version, 'torch_version')
        model_name = _optional_str(model_name, 'model_name')
        provenance = {
            name: _optional_str(value, name)
            for name, value in (
                ('package_model', package_model), ('modal', modal), ('package_file', package_file),
                ('source', source),
            )
        }  # fmt: skip
        weights_sha256 = _optional_str(weights_sha256, 'weights_sha256')
        if weights_sha256 is not None and not re.fullmatch('[0-9a-f]{64}', weights_sha256):
            raise MlffModelError(f'weights_sha256 must be 64 lower-case hex digits, got {weights_sha256!r}.')
        pretrained = file is None
        if not pretrained and (weights_sha256 or any(provenance.values())):
            raise MlffModelError(
                'package_model, modal, package_file, weights_sha256 and source belong to pretrained models only.'
            )
        filename = sha256 = None
        extra_names, extra_sha256 = [], {}
        if pretrained:
            if not model_name:
                raise MlffModelError('a pretrained model needs its model_name (e.g. "chgnet-0.3.0", "7net-0").')
            if extra_files:
                raise MlffModelError('a pretrained model has no files: extra_files cannot be given.')
            if (provenance['package_file'] is None) != (weights_sha256 is None):
                raise MlffModelError('package_file and weights_sha256 of a pretrained model go together.')
            sha256 = weights_sha256
        else:
            path = Path(file)
            if not path.is_file():
                raise MlffModelError(f'model file {path} does not exist or is not a file.')
            filename = path.name
            sha256 = file_sha256(path)
            self.base.repository.put_object_from_file(str(path), filename)
            for extra in extra_files or []:
                extra = Path(extra)
                if not extra.is_file():
                    raise MlffModelError(f'extra model file {extra} does not exist or is not a file.')
                if extra.name == filename or extra.name in extra_sha256:
                    raise MlffModelError(f'two model files are called {extra.name}: file names must be distinct.')
                self.base.repository.put_object_from_file(str(extra), extra.name)
                extra_names.append(extra.name)
                extra_sha256[extra.name] = file_sha256(extra)
        attributes = {
            'architecture': architecture,
            'species': species,
            'cutoff_A': cutoff,
            'engine': engine,
            'engine_version': engine_version,
            'filename': filename,
            'sha256': sha256,
            'pretrained': pretrained,
            'model_name': model_name,
            'target': target,
            'torch_version': torch_version,
            'extra_files': extra_names,
            'extra_sha256': extra_sha256,
            **({key: value for key, value in provenance.items()} if pretrained else {}),
        }
        for key, value in attributes.items():
            self.base.attributes.set(key, value)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        architecture: str,
        species: Sequence[str],
        cutoff_A: float | None,
        engine: str,
        engine_version: str = '',
        target: str | None = None,
        torch_version: str | None = None,
        extra_files: Sequence[str | Path] | None = None,
    ) -> MlffModel:
        """An unstored model from its main file (e.g. ``model.model``, ``model.nequip.pt2``, ``model.pth``).

        :param cutoff_A: radial cutoff (Å) or None if unknown.
        :param engine: environment that loads it (mace, nequip, deepmd, pretrained).
        :param target: nequip-compile target (``ase``, ``batch``, ``pair_nequip``) for compiled nequip models.
        :raises MlffModelError: unknown architecture/engine, bad species or cutoff, missing file.
        """
        return cls(
            file=path,
            architecture=architecture,
            species=species,
            cutoff_A=cutoff_A,
            engine=engine,
            engine_version=engine_version,
            target=target,
            torch_version=torch_version,
            extra_files=extra_files,
        )

    @classmethod
    def get_or_create(
        cls,
        path: str | Path,
        *,
        architecture: str,
        species: Sequence[str],
        cutoff_A: float | None,
        engine: str,
        engine_version: str = '',
        target: str | None = None,
        torch_version: str | None = None,
        extra_files: Sequence[str | Path] | None = None,
    ) -> MlffModel:
        """The stored model with the same file sha256 and architecture if there is one, else a new unstored one.

        Arguments as :meth:`from_file`. An existing node whose species or cutoff differ from the ones given is an
        error (the same file cannot be two different models).
        """
        path = Path(path)
        if not path.is_file():
            raise MlffModelError(f'model file {path} does not exist or is not a file.')
        architecture = _architecture(architecture)
        wanted_species, wanted_cutoff = _species(species), _cutoff(cutoff_A)
        query = QueryBuilder().append(
            cls,
            filters={'attributes.sha256': file_sha256(path), 'attributes.architecture': architecture},
            project='*',
        )
        query.order_by({cls: {'id': 'asc'}}).limit(1)
        existing = query.first(flat=True)
        if existing is None:
            return cls.from_file(
                path,
                architecture=architecture,
                species=species,
                cutoff_A=cutoff_A,
                engine=engine,
                engine_version=engine_version,
                target=target,
                torch_version=torch_version,
                extra_files=extra_files,
            )
        if existing.species != wanted_species or existing.cutoff_A != wanted_cutoff:
            raise MlffModelError(
                f'{path.name} is stored already as model {existing.pk} with species {existing.species} and cutoff '
                f'{existing.cutoff_A} Å, not species {wanted_species} and cutoff {wanted_cutoff} Å.'
            )
        return existing

    @classmethod
    def pretrained_model(
        cls,
        model_name: str,
        *,
        architecture: str,
        species: Sequence[str],
        cutoff_A: float | None = None,
        engine: str = 'pretrained',
        engine_version: str = '',
        package_model: str | None = None,
        modal: str | None = None,
        package_file: str | None = None,
        weights_sha256: str | None = None,
        source: str | None = None,
    ) -> MlffModel:
        """An unstored node for a universal model that ships with its package (no file), e.g. 'chgnet-0.3.0'.

        :param package_model: the package's own name of the model (default: ``model_name``).
        :param modal: fidelity head of a multi-fidelity model (e.g. ``'PBE'``).
        :param package_file: the weights file inside the distribution (``<package>/…``), checked by sha256.
        :param weights_sha256: sha256 of ``package_file``.
        :param source: reference data, publication and licence, for people.
        """
        return cls(
            model_name=model_name,
            architecture=architecture,
            species=species,
            cutoff_A=cutoff_A,
            engine=engine,
            engine_version=engine_version,
            package_model=package_model,
            modal=modal,
            package_file=package_file,
            weights_sha256=weights_sha256,
            source=source,
        )

    def describe(self) -> str:
        """Short name for messages: ``model <pk> (<architecture>, <file or model name>)``."""
        name = f'model {self.pk}' if self.is_stored else 'model'
        return f'{name} ({self.architecture}, {self.filename or self.model_name})'

    def verify_checksum(self) -> None:
        """Check the stored file(s) against the recorded sha256 (nothing to check for a pretrained model).

        :raises ModelChecksumError: a file is missing or its content changed.
        """
        if self.pretrained:
            return
        expected = {self.filename: self.sha256, **(self.base.attributes.get('extra_sha256') or {})}
        for name, sha256 in expected.items():
            try:
                with self.base.repository.open(name, mode='rb') as handle:
                    actual = _stream_sha256(handle)
            except (FileNotFoundError, OSError) as exception:
                raise ModelChecksumError(f'{self.describe()}: its file {name} is missing: {exception}') from exception
            if actual != sha256:
                raise ModelChecksumError(
                    f'{self.describe()}: the stored {name} has sha256 {actual}, but the node records {sha256}: '
                    'the file was changed or corrupted; do not use this model.'
                )

    def write_files(self, directory: str | Path) -> Path:
        """Copy the model file and any extra files into ``directory`` (created if needed); return the main file.

        The checksum is verified first. A pretrained model has no file: that is an error.
        """
        if self.pretrained:
            raise MlffModelError(
                f'{self.describe()} is pretrained and ships with its package: there is no file to write; '
                f'load it by its model_name {self.model_name!r}.'
            )
        self.verify_checksum()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in [self.filename, *self.extra_files]:
            with self.base.repository.open(name, mode='rb') as source, open(directory / name, 'wb') as target:
                shutil.copyfileobj(source, target)
        return directory / self.filename

    def covers(self, species: Iterable[str] | str) -> bool:
        """Whether the model was trained on every one of ``species`` (a symbol or a list of symbols)."""
        wanted = {species} if isinstance(species, str) else set(species)
        return wanted <= set(self.species)

    def check_species(self, species: Iterable[str] | str) -> None:
        """Raise :class:`MlffModelError` (a ValueError) naming the species the model does not cover."""
        wanted = {species} if isinstance(species, str) else set(species)
        missing = sorted(wanted - set(self.species))
        if missing:
            raise MlffModelError(
                f'{self.describe()} does not cover {", ".join(missing)}: it was trained on {", ".join(self.species)}.'
            )

    def require_engine(self, engine_name: str) -> None:
        """Raise :class:`ModelEngineError` unless the model can be loaded in the environment ``engine_name``."""
        if engine_name != self.engine:
            raise ModelEngineError(f"{self.describe()} needs the '{self.engine}' environment, not '{engine_name}'.")

    def _attribute(self, key: str):
        return self.base.attributes.get(key)

    @property
    def architecture(self) -> str:
        """Network architecture: mace, nequip, deepmd, chgnet or sevenn."""
        return self._attribute('architecture')

    @property
    def species(self) -> list[str]:
        """Chemical symbols the model covers, sorted."""
        return self._attribute('species')

    @property
    def cutoff_A(self) -> float | None:
        """Radial cutoff (Å), None if unknown."""
        return self._attribute('cutoff_A')

    @property
    def engine(self) -> str:
        """Engine environment that loads the model: mace, nequip, deepmd or pretrained."""
        return self._attribute('engine')

    @property
    def engine_version(self) -> str:
        """Version of the engine package that wrote the model ('' if unknown)."""
        return self._attribute('engine_version')

    @property
    def filename(self) -> str | None:
        """Name of the main model file in the repository, None for a pretrained model."""
        return self._attribute('filename')

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the main model file; of the packaged weights for a pretrained model (None: not recorded)."""
        return self._attribute('sha256')

    @property
    def pretrained(self) -> bool:
        """Whether the model ships with its package and has no file (made by :meth:`pretrained_model`)."""
        return bool(self._attribute('pretrained'))

    @property
    def package_model(self) -> str | None:
        """A pretrained model's name in its package (e.g. '0.3.0' for CHGNet, '7net-mf-0'); None if not recorded."""
        return self.base.attributes.get('package_model', None)

    @property
    def modal(self) -> str | None:
        """The fidelity head of a multi-fidelity pretrained model (e.g. 'PBE'), else None."""
        return self.base.attributes.get('modal', None)

    @property
    def package_file(self) -> str | None:
        """A pretrained model's weights file inside its distribution (``<package>/…``), or None."""
        return self.base.attributes.get('package_file', None)

    @property
    def source(self) -> str | None:
        """Where a pretrained model comes from (reference data, publication, licence), or None."""
        return self.base.attributes.get('source', None)

    @property
    def model_name(self) -> str | None:
        """Name of a pretrained model (e.g. 'chgnet-0.3.0', '7net-0'), None otherwise."""
        return self._attribute('model_name')

    @property
    def target(self) -> str | None:
        """nequip-compile target (e.g. 'ase'), None for other architectures."""
        return self._attribute('target')

    @property
    def torch_version(self) -> str | None:
        """Torch version the model was written with, None if unknown."""
        return self._attribute('torch_version')

    @property
    def extra_files(self) -> list[str]:
        """Names of the extra files stored next to the main file."""
        return self._attribute('extra_files') or []
