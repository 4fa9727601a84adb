"""The shipped structures as AiiDA nodes: what each builder records in ``atoms.info`` becomes an attribute."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiida.orm import StructureData
    from ase import Atoms


def as_structure_data(atoms: Atoms) -> StructureData:
    """An unstored ``StructureData`` of ``atoms`` with every ``atoms.info`` entry (source, formal charges, ...) as an
    attribute (kept when the node is stored)."""
    from aiida import orm

    structure = orm.StructureData(ase=atoms)
    for key, value in atoms.info.items():
        structure.base.attributes.set(key, value)
    return structure
