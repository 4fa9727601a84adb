"""data sub-package of aiida-mlffdiff."""
