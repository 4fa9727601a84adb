"""What every restart wrapper of this plugin shares: a report line per handled failure and the walltime handler."""

from __future__ import annotations

from aiida.engine import BaseRestartWorkChain, CalcJob, ProcessHandlerReport, process_handler

#: Factor applied to the walltime after a job ran out of it, and its ceiling (s).
WALLTIME_FACTOR = 1.5
MAX_WALLTIME_S = 48 * 3600


class RestartWorkChain(BaseRestartWorkChain):
    """``BaseRestartWorkChain`` with a walltime handler (1.5x, capped) and reports in a lab-notebook style."""

    def report_error_handled(self, node, action: str) -> None:
        """Say in the report what went wrong and what is done about it."""
        self.report(f'{node.process_label}<{node.pk}> failed with exit status {node.exit_status}: {node.exit_message}')
        self.report(f'action taken: {action}')

    @process_handler(priority=400, exit_codes=[CalcJob.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, node):
        """The job ran out of walltime: retry with ``WALLTIME_FACTOR`` times more, up to ``MAX_WALLTIME_S``."""
        options = dict(self.ctx.inputs.metadata.get('options', {}))
        old = options.get('max_wallclock_seconds') or node.get_option('max_wallclock_seconds') or 3600
        new = min(int(old * WALLTIME_FACTOR), MAX_WALLTIME_S)
        if new <= old:
            self.report_error_handled(node, f'walltime already at the ceiling of {MAX_WALLTIME_S} s: giving up')
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_UNHANDLED_FAILURE)
        options['max_wallclock_seconds'] = new
        self.ctx.inputs.metadata['options'] = options
        self.report_error_handled(node, f'restarting with max_wallclock_seconds {old} → {new} s')
        return ProcessHandlerReport(do_break=True)
