"""workchains of aiida-mlffdiff."""
