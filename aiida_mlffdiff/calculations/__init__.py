"""calculations of aiida-mlffdiff."""
