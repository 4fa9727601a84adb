"""parsers of aiida-mlffdiff."""
