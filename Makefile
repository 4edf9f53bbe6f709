# mechlens: the README's commands. Each is idempotent and prints one line per step.
#   make lab    set up if needed, then JupyterLab on notebooks/ (the main job)
#   make test   set up if needed, then the Rust tests, the notebooks and the kernel checks
#   make setup  install everything into the project (.venv, .tools, .cache, target)
#   make bench  the benchmarks, written to BENCHMARKS.md and bench/results.json

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PY := .venv/bin/python
# Runs a command as one named step and prints its duration (scripts/step).
STEP := scripts/step

.PHONY: setup lab test bench

setup:
	@scripts/setup

# Jupyter refuses to run as root unless told; containers often run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

# A kernel on standby (kernel/standby.py) warms up while JupyterLab opens, so that the first
# notebook's kernel is up at once; it ends with JupyterLab, which execs into this shell's pid.
lab: setup
	@echo "JupyterLab on notebooks/; open the URL with the login token printed below"
	@$(PY) kernel/standby.py start --server-pid $$$$ --cwd notebooks/tutorials; \
	  exec $(PY) -m jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 $(ALLOW_ROOT)

# Tests and benchmarks start each kernel from nothing: no standby takes a test's place, and
# kernel_checks and kernel_bench turn standbys on where they test or time them.
test bench: export MECHLENS_STANDBY = 0

TEST_STEPS := rust-tests notebook-sources exercise-sources notebooks browser kernel setup-checks

test: setup
	@echo "mechlens tests"
	@rm -f $(TEST_STEPS:%=.cache/step-logs/%.count)
	@$(STEP) rust-tests cargo test --workspace
	@$(STEP) notebook-sources $(PY) tests/notebook_sources.py
	@$(STEP) exercise-sources $(PY) scripts/exercises.py --check
	@$(STEP) notebooks $(PY) tests/run_notebooks.py
	@$(STEP) browser $(PY) tests/browser_check.py
	@$(STEP) kernel $(PY) tests/kernel_checks.py
	@$(STEP) setup-checks tests/setup_checks.sh
	@scripts/test-total $(TEST_STEPS)

bench: setup
	@$(STEP) model-bench $(PY) bench/model_bench.py
	@$(STEP) patch-bench $(PY) bench/patch_bench.py
	@$(STEP) sae-bench $(PY) bench/sae_bench.py
	@$(STEP) train-bench $(PY) bench/toy_train_bench.py
	@$(STEP) spd-bench $(PY) bench/spd_bench.py
	@$(STEP) e2e-bench $(PY) bench/e2e_bench.py
	@$(STEP) kernel-bench env CI_LOG=$(CI_LOG) $(PY) bench/kernel_bench.py
	@cat BENCHMARKS.md
