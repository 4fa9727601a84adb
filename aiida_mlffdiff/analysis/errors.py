"""The one exception type of the analysis core."""


class AnalysisError(ValueError):
    """Input that the analysis cannot process; the message names the problem and how to fix it."""
