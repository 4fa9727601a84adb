"""Sphinx configuration of the aiida-mlffdiff documentation (MyST markdown; `make docs`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The process directives of aiida-core (``aiida.sphinxext``) call ``load_profile()``. Build against a throw-away
# profile (``core.sqlite_temp``: nothing is stored, no broker) so the docs need no configured AiiDA profile and never
# touch one (not even the one `make` exports in AIIDA_PATH): loading it first makes every later ``load_profile()``
# return it. Its (empty) configuration folder lives in the ignored docs/_build/.
os.environ['AIIDA_PATH'] = str(Path(__file__).resolve().parent / '_build' / '.aiida')
from aiida import load_profile
from aiida.storage.sqlite_temp import SqliteTempBackend

load_profile(SqliteTempBackend.create_profile('mlffdiff-docs'), allow_switch=True)

import aiida_mlffdiff  # noqa: E402

project = 'aiida-mlffdiff'
author = 'aiida-mlffdiff developers'
copyright = '2026, aiida-mlffdiff developers'
release = version = aiida_mlffdiff.__version__

extensions = ['myst_parser', 'aiida.sphinxext', 'sphinx_click']
sys.path.insert(0, str(Path(__file__).resolve().parent / '_ext'))
extensions.append('mlffdiff_docs')

source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', '_ext', 'Thumbs.db', '.DS_Store']

myst_enable_extensions = ['colon_fence', 'dollarmath', 'deflist']
myst_heading_anchors = 3

html_theme = 'alabaster'
html_title = 'aiida-mlffdiff'
html_theme_options = {'description': 'Li-ion diffusion from MLFF MD, with AiiDA provenance', 'page_width': '1100px'}
