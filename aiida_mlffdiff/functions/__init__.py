"""functions sub-package of aiida-mlffdiff."""
