"""AiiDA plugin: Li-ion diffusion from machine-learned force-field MD, with provenance from DFT to D(T)."""

__version__ = '0.1.0'
