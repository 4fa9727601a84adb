# aiida-mlffdiff: every install step lives here, so that a fresh clone needs nothing by hand.
#   make demo   set everything up, then run the main job on the embedded AiiDA profile
#   make test   set everything up (services included: PostgreSQL, RabbitMQ, SLURM), then lint and run the suite
#   make docs   the Sphinx documentation in docs/_build/html (warnings are errors)
#   make bench  the benchmarks: analysis (ratios against pymatgen and kinisi), the single-trajectory estimators,
#               MD throughput (against ASE, torch-sim)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The embedded profile lives inside the checkout (SQLite + the ZeroMQ broker, made by `verdi presto`),
# so a user's own ~/.aiida is never touched. To use your own configuration: make demo AIIDA_PATH=$$HOME
AIIDA_PATH ?= $(CURDIR)/.aiida
export AIIDA_PATH
PROFILE ?= mlffdiff

.PHONY: setup profile engines system-packages services demo test lint bench docs clean

setup: $(VENV)/.installed profile

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tests,dev,docs]'
	touch $@

# verdi presto describes localhost with one process per machine; the MD workers of a job come from the computer
# (never from the submitting host), so the embedded profile's localhost gets this machine's cores.
profile: $(VENV)/.installed
	@mkdir -p $(AIIDA_PATH)
	@$(BIN)/verdi profile show $(PROFILE) >/dev/null 2>&1 \
		|| { $(BIN)/verdi presto --profile-name $(PROFILE) --use-zeromq \
		&& $(BIN)/python -c "from aiida import load_profile, orm; load_profile('$(PROFILE)'); \
		orm.load_computer('localhost').set_default_mpiprocs_per_machine($$(nproc))"; }
	@echo "AiiDA profile '$(PROFILE)' in $(AIIDA_PATH)"

# One isolated environment per MLFF engine (cached in ~/.cache/aiida-mlffdiff/envs, reused when the pins are
# unchanged), registered as codes of the embedded profile. The test suite's own profile reuses the same cache.
ENGINES ?= mace,nequip,deepmd,pretrained
engines: profile
	$(BIN)/aiida-mlffdiff --profile $(PROFILE) setup --engines $(ENGINES)

# Debian packages: Quantum ESPRESSO (reference DFT data, tests and demo) and graphviz (`verdi node graph generate`).
system-packages:
	@command -v pw.x >/dev/null 2>&1 || { \
		echo "installing Debian's Quantum ESPRESSO (pw.x) for the reference DFT data"; \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq quantum-espresso >/dev/null; \
		else \
			echo "error: pw.x not found and not root: run 'sudo apt-get install quantum-espresso' (or put QE >= 6.6 on PATH)"; exit 1; \
		fi; }
	@command -v dot >/dev/null 2>&1 || { \
		echo "installing Debian's graphviz for provenance graphs"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null \
		|| echo "warning: could not install graphviz; 'verdi node graph generate' will not render"; }

# The production stack of the suite's production tests, from Debian's packages, started as root without systemd:
# PostgreSQL (+ a CI role), RabbitMQ (no consumer timeout), munge + slurmctld + slurmd (one node, partition debug).
services:
	bash .ci/services.sh

# The set-up is timed apart from the study itself (the demo's own wall time is printed at its end).
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory setup system-packages engines \
		&& echo "set-up done in $$(( $$(date +%s) - start )) s"
	$(BIN)/aiida-mlffdiff --profile $(PROFILE) demo --output-dir demo_output

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup system-packages engines services lint
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest

# MD throughput of our ensemble drivers against ASE, torch-sim (and LAMMPS for DeePMD when its environment is built);
# builds the missing engine environments (torchsim-* need Python 3.12) and trains tiny models once (cached).
MD_BENCH_ARGS ?= --quick
bench: setup
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/single_trajectory.py
	$(BIN)/python bench/md_throughput.py $(MD_BENCH_ARGS)

# The Sphinx documentation (MyST markdown, aiida-core's process directives, the click CLI); warnings are errors.
# It needs no AiiDA profile (docs/conf.py loads a throw-away one). Open docs/_build/html/index.html.
docs: $(VENV)/.installed
	@$(BIN)/python -c 'import sphinx, myst_parser, sphinx_click' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[docs]'
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .aiida demo_output .pytest_cache .ruff_cache
