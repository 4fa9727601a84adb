"""MlffModel: file + metadata, deduplication by sha256, checksum verification, engine and species checks."""

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from aiida import orm
from aiida.manage import get_manager

from aiida_mlffdiff.data import MlffModel, ModelChecksumError, ModelEngineError
from aiida_mlffdiff.data.mlff_model import MlffModelError

SPECIES = ['Li', 'P', 'S', 'Cl']


@pytest.fixture
def model_file(tmp_path):
    """A unique stand-in model file (bytes unique per test, so nodes never share content by accident)."""
    path = tmp_path / 'model.nequip.pt2'
    path.write_bytes(b'PT2\x00' + uuid.uuid4().bytes * 64)
    return path


def nequip_model(path, **overrides):
    values = {
        'architecture': 'nequip',
        'species': SPECIES,
        'cutoff_A': 5.0,
        'engine': 'nequip',
        'engine_version': '0.19.1',
        'target': 'ase',
        'torch_version': '2.13.0',
    }
    values.update(overrides)
    return MlffModel.from_file(path, **values)


@pytest.mark.filterwarnings('ignore:`json_encoders` is deprecated')  # aiida-core's to_model()
def test_file_model_round_trip(model_file, tmp_path):
    node = nequip_model(model_file).store()
    loaded = orm.load_node(node.pk)
    assert isinstance(loaded, MlffModel)
    expected = {
        'architecture': 'nequip',
        'species': ['Cl', 'Li', 'P', 'S'],
        'cutoff_A': 5.0,
        'engine': 'nequip',
        'engine_version': '0.19.1',
        'filename': 'model.nequip.pt2',
        'sha256': hashlib.sha256(model_file.read_bytes()).hexdigest(),
        'pretrained': False,
        'model_name': None,
        'target': 'ase',
        'torch_version': '2.13.0',
    }
    assert {key: getattr(loaded, key) for key in expected} == expected
    assert str(loaded.to_model().uuid) == loaded.uuid  # aiida's pydantic model of the node is valid
    loaded.verify_checksum()
    written = loaded.write_files(tmp_path / 'job')
    assert written == tmp_path / 'job' / 'model.nequip.pt2'
    assert written.read_bytes() == model_file.read_bytes()


def test_attributes_are_queryable(model_file):
    node = nequip_model(model_file).store()
    query = orm.QueryBuilder().append(
        MlffModel,
        filters={
            'attributes.architecture': 'nequip',
            'attributes.sha256': node.sha256,
            'attributes.pretrained': False,
            'attributes.cutoff_A': {'<': 5.5},
        },
        project='id',
    )
    assert query.all(flat=True) == [node.pk]


def test_get_or_create_deduplicates(model_file, tmp_path):
    first = MlffModel.get_or_create(model_file, architecture='nequip', species=SPECIES, cutoff_A=5.0, engine='nequip')
    assert not first.is_stored
    first.store()
    copy = tmp_path / 'copy' / 'renamed.pt2'
    copy.parent.mkdir()
    copy.write_bytes(model_file.read_bytes())  # same bytes, other name: the same model
    again = MlffModel.get_or_create(copy, architecture='nequip', species=SPECIES[::-1], cutoff_A=5, engine='nequip')
    assert again.is_stored
    assert again.pk == first.pk
    other = MlffModel.get_or_create(model_file, architecture='mace', species=SPECIES, cutoff_A=5.0, engine='mace')
    assert not other.is_stored  # another architecture is another model
    with pytest.raises(MlffModelError, match=f'stored already as model {first.pk}'):
        MlffModel.get_or_create(model_file, architecture='nequip', species=['Li'], cutoff_A=5.0, engine='nequip')


def loose_object_path(key: str) -> Path:
    """Where the disk-objectstore of the test profile keeps a (loose) object."""
    repository = get_manager().get_profile_storage().get_repository()
    with repository._container as container:
        folder, prefix = Path(container.get_folder()), container.loose_prefix_len
    return folder / 'loose' / key[:prefix] / key[prefix:]


def test_corrupted_stored_file_is_detected(model_file, tmp_path):
    node = nequip_model(model_file).store()
    node.verify_checksum()
    path = loose_object_path(node.base.repository.get_object(node.filename).key)
    assert path.is_file()
    os.chmod(path, 0o644)
    path.write_bytes(b'corrupted')
    with pytest.raises(ModelChecksumError, match='the file was changed or corrupted'):
        orm.load_node(node.pk).verify_checksum()
    with pytest.raises(ModelChecksumError):
        node.write_files(tmp_path / 'job')  # nothing corrupted reaches a calculation
    assert not (tmp_path / 'job' / node.filename).exists()


def test_replaced_file_of_unstored_node_is_detected(model_file):
    node = nequip_model(model_file)
    node.base.repository.put_object_from_bytes(b'other weights', node.filename)
    with pytest.raises(ModelChecksumError, match=r'model\.nequip\.pt2 has sha256'):
        node.verify_checksum()


def test_require_engine(model_file):
    node = nequip_model(model_file).store()
    node.require_engine('nequip')
    with pytest.raises(ModelEngineError, match=rf"model {node.pk} .* needs the 'nequip' environment, not 'mace'"):
        node.require_engine('mace')


def test_species_coverage(model_file):
    node = MlffModel.from_file(model_file, architecture='deepmd', species=['Li', 'S'], cutoff_A=None, engine='deepmd')
    assert node.covers(['S', 'Li'])
    assert node.covers('Li')
    assert not node.covers(['Li', 'P', 'S', 'Cl'])
    node.check_species(['Li'])
    with pytest.raises(ValueError, match='does not cover Cl, P: it was trained on Li, S'):
        node.check_species(['Li', 'P', 'S', 'Cl'])


def test_pretrained_model(tmp_path):
    # A name of no real model: a stored '7net-0' with these species would be what the catalogue's get-or-create
    # (calculations/evaluate.py) finds afterwards in the same profile.
    node = MlffModel.pretrained_model(
        'universal-test-0', architecture='sevenn', species=SPECIES, cutoff_A=5.0, engine_version='0.13.0'
    ).store()
    assert node.pretrained is True
    assert (node.filename, node.sha256, node.model_name, node.engine) == (None, None, 'universal-test-0', 'pretrained')
    assert node.base.repository.list_object_names() == []
    node.verify_checksum()  # nothing to check
    node.require_engine('pretrained')
    with pytest.raises(MlffModelError, match='ships with its package'):
        node.write_files(tmp_path)
    query = orm.QueryBuilder().append(
        MlffModel, filters={'attributes.pretrained': True, 'attributes.model_name': 'universal-test-0'}, project='id'
    )
    assert node.pk in query.all(flat=True)
    with pytest.raises(MlffModelError, match='needs its model_name'):
        MlffModel.pretrained_model('', architecture='chgnet', species=SPECIES)
    with pytest.raises(MlffModelError, match='go together'):
        MlffModel.pretrained_model('x', architecture='chgnet', species=SPECIES, package_file='chgnet/x.pth')
    with pytest.raises(MlffModelError, match='64 lower-case hex'):
        MlffModel.pretrained_model('x', architecture='chgnet', species=SPECIES, package_file='a', weights_sha256='ab')
    recorded = MlffModel.pretrained_model(
        'x', architecture='sevenn', species=SPECIES, package_model='7net-mf-0', modal='PBE',
        package_file='sevenn/w.pth', weights_sha256='0' * 64, source='test',
    )  # fmt: skip
    assert (recorded.package_model, recorded.modal, recorded.package_file, recorded.sha256, recorded.source) == (
        '7net-mf-0',
        'PBE',
        'sevenn/w.pth',
        '0' * 64,
        'test',
    )
    recorded.verify_checksum()  # the driver checks the packaged file, not the node


def test_weights_provenance_is_for_pretrained_models_only(model_file):
    with pytest.raises(MlffModelError, match='pretrained models only'):
        MlffModel(file=model_file, architecture='nequip', species=SPECIES, engine='nequip', modal='PBE')


def test_extra_files(model_file, tmp_path):
    extra = tmp_path / 'config.yaml'
    extra.write_text('r_max: 5.0\n')
    node = nequip_model(model_file, extra_files=[extra]).store()
    assert node.extra_files == ['config.yaml']
    node.write_files(tmp_path / 'job')
    assert (tmp_path / 'job' / 'config.yaml').read_text() == 'r_max: 5.0\n'
    with pytest.raises(MlffModelError, match='file names must be distinct'):
        nequip_model(model_file, extra_files=[model_file])


@pytest.mark.parametrize(
    ('overrides', 'message'),
    [
        ({'architecture': 'schnet'}, "unknown architecture 'schnet'"),
        ({'engine': 'lammps'}, "unknown engine environment 'lammps'"),
        ({'species': []}, 'species must not be empty'),
        ({'species': 'LiPSCl'}, 'species must be a list of chemical symbols'),
        ({'species': ['Li', 'Xx']}, r"species \['Xx'\] are not chemical symbols"),
        ({'cutoff_A': -1.0}, 'cutoff_A must be a positive number'),
        ({'architecture': 'mace', 'engine': 'mace'}, 'target .* only applies to nequip models'),
    ],
)
def test_bad_metadata_is_refused(model_file, overrides, message):
    with pytest.raises(MlffModelError, match=message):
        nequip_model(model_file, **overrides)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(MlffModelError, match='does not exist'):
        nequip_model(tmp_path / 'nothing.pt2')
    with pytest.raises(MlffModelError, match='does not exist'):
        MlffModel.get_or_create(
            tmp_path / 'nothing.pt2', architecture='mace', species=SPECIES, cutoff_A=5, engine='mace'
        )
