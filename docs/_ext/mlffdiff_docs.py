"""Local Sphinx extension: exit-code tables generated from the process specs.

``aiida.sphinxext`` documents inputs, outputs and the outline of a process but not its exit codes. The directive

.. code-block:: rst

   .. mlffdiff-exit-codes:: aiida_mlffdiff.workchains.study.MlffDiffusionStudyWorkChain

renders the exit codes of the spec (status, name, message) as a table; ``:plugin-only:`` leaves out those that
aiida-core defines for every process or CalcJob (status < 300, ``ERROR_UNSPECIFIED`` and friends), keeping the
plugin's own. ``.. mlffdiff-calcfunction-exit-codes::`` renders the shared calcfunction codes of
``aiida_mlffdiff.functions.exit_codes.EXIT_CODES``.
"""

from __future__ import annotations

from typing import ClassVar

from aiida.common.utils import get_object_from_string
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective


def _table(header: list[str], rows: list[list[str]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=['mlffdiff-exit-codes'])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body
    for target, cells, literal in ((head, [header], False), (body, rows, True)):
        for cells_of_row in cells:
            row = nodes.row()
            for index, text in enumerate(cells_of_row):
                entry = nodes.entry()
                if literal and index == 1:
                    entry += nodes.paragraph('', '', nodes.literal(text=text))
                else:
                    entry += nodes.paragraph(text=text)
                row += entry
            target += row
    return table


class ExitCodesDirective(SphinxDirective):
    """Exit codes of a process class (or process function) from its spec."""

    required_arguments = 1
    option_spec: ClassVar[dict] = {'plugin-only': directives.flag}

    def run(self):
        process = get_object_from_string(self.arguments[0])
        exit_codes = sorted(process.spec().exit_codes.items(), key=lambda item: item[1].status)
        if 'plugin-only' in self.options:
            exit_codes = [(name, code) for name, code in exit_codes if code.status >= 300]
        if not exit_codes:
            return [nodes.paragraph(text='No exit codes of its own.')]
        rows = [[str(code.status), name, code.message] for name, code in exit_codes]
        return [_table(['status', 'name', 'message'], rows, [8, 30, 62])]


class CalcfunctionExitCodesDirective(SphinxDirective):
    """The exit codes shared by the calcfunctions (``functions/exit_codes.py``)."""

    def run(self):
        from aiida_mlffdiff.functions.exit_codes import EXIT_CODES

        rows = [[str(status), name, meaning] for name, (status, meaning) in EXIT_CODES.items()]
        rows.sort(key=lambda row: int(row[0]))
        return [_table(['status', 'name', 'meaning'], rows, [8, 30, 62])]


def setup(app):
    app.add_directive('mlffdiff-exit-codes', ExitCodesDirective)
    app.add_directive('mlffdiff-calcfunction-exit-codes', CalcfunctionExitCodesDirective)
    return {'version': '1', 'parallel_read_safe': True}
