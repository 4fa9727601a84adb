"""``DriverCalculation``: what the CalcJobs that run a stand-alone driver with a model's engine python share.

The evaluate and MD CalcJobs both copy a driver script and the model file(s) into the job folder, run the driver with
the python of the model's engine environment, set the thread variables of that environment and retrieve the driver's
info JSON, its npz of results and its stdout/stderr. The parser side is :class:`~aiida_mlffdiff.parsers.driver.
DriverParser`.
"""

from __future__ import annotations

from typing import ClassVar

from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.engine import CalcJob

from ..environments.engines import thread_variables

__all__ = ('DriverCalculation',)


class DriverCalculation(CalcJob):
    """Base of the CalcJobs that run a driver script (``drivers/``) with a model's engine python.

    Subclasses set the file names (``_INPUT``: the file the driver reads first, ``_OUTPUT``: its npz, ``_INFO``: its
    status JSON, ``_STDOUT``/``_STDERR``) and ``_PARSER`` (entry point of the parser), add their inputs (``model``
    among them), outputs and exit codes from 320 on, and implement :meth:`environment_name`.
    """

    _INPUT: ClassVar[str]
    _OUTPUT: ClassVar[str]
    _INFO: ClassVar[str]
    _STDOUT: ClassVar[str]
    _STDERR: ClassVar[str]
    _PARSER: ClassVar[str]

    @classmethod
    def define(cls, spec):
        super().define(spec)
        options = spec.inputs['metadata']['options']
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        options['withmpi'].default = False
        options['parser_name'].default = cls._PARSER
        options['input_filename'].default = cls._INPUT
        options['output_filename'].default = cls._STDOUT
        # Failures of the job or its environment are not results: such a node is never a cache source.
        spec.exit_code(
            300, 'ERROR_MISSING_OUTPUT', invalidates_cache=True, message='The driver left no usable output: {message}'
        )
        spec.exit_code(
            310,
            'ERROR_MODEL_LOAD_FAILED',
            invalidates_cache=True,
            message='The engine environment could not load the model: {message}',
        )

    def environment_name(self) -> str:
        """The engine environment whose python runs this job (e.g. ``mace``, ``torchsim-nequip``)."""
        raise NotImplementedError

    def thread_variables(self, threads: int = 1) -> dict[str, str]:
        """``threads`` threads for torch, OpenMP and BLAS, plus the engine environment's own variables (its
        intra-op thread count set to ``threads`` too), except those the user set in ``environment_variables``."""
        user = self.inputs.metadata.options.get('environment_variables', None) or {}
        return thread_variables(self.environment_name(), threads, user)

    def model_copy_list(self) -> list[tuple[str, str, str]]:
        """``local_copy_list`` entries of the model's file(s) (none for a pretrained model: its package has them)."""
        model = self.inputs.model
        if model.pretrained:
            return []
        return [(model.uuid, name, name) for name in [model.filename, *model.extra_files]]

    def driver_calcinfo(self, cmdline: list[str], local_copy_list: list, threads: int = 1) -> CalcInfo:
        """The CalcInfo that runs ``code cmdline`` with the thread variables and retrieves the driver's files.

        Local copies go straight to the working directory, but in a dry run they land in the sandbox, whose content
        is stored in the node's repository: they are inputs already, so they are kept out of it.
        """
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = cmdline
        codeinfo.stdout_name = self._STDOUT
        codeinfo.stderr_name = self._STDERR

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.remote_copy_list = []
        calcinfo.retrieve_list = [self._OUTPUT, self._INFO, self._STDOUT, self._STDERR]
        calcinfo.provenance_exclude_list = [target for _, _, target in local_copy_list]
        variables = self.thread_variables(threads)
        calcinfo.prepend_text = '\n'.join(f'export {name}={value}' for name, value in variables.items())
        return calcinfo
