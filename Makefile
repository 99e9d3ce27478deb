# Two entry points (README): `make reproduce` (embedded default, offline CPU) and `make test`.
# Both create .venv from the pinned CPU stack (envs/cpu.txt) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
SNAKEMAKE_ARGS ?=
CONFIG ?= config/config.yaml

.PHONY: setup reproduce test lint bench gpu-check report golden readme

$(VENV)/.installed: envs/cpu.txt envs/cpu-nodeps.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r envs/cpu.txt
	$(PY) -m pip install -q --no-deps -r envs/cpu-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# --forceall: the committed tables and figures are regenerated from scratch, not taken as up to date (finished math
# runs with unchanged settings are kept: README, "Long jobs"). The config file is validated first, so that a read
# error names it (Snakemake's own parse of --configfile does not).
reproduce: setup
	. $(VENV)/bin/activate && python -m grpo_prm.config $(CONFIG) > /dev/null \
	  && snakemake --cores $(CORES) --forceall --configfile $(CONFIG) $(SNAKEMAKE_ARGS)

test: setup
	. $(VENV)/bin/activate && python -m pytest -ra --runslow

# Lint gates (CI runs them too): ruff's rules and line length, ruff's formatting, snakefmt on the workflow files.
PY_DIRS := src tests tests_vllm benchmarks paper_figures examples
lint: setup
	. $(VENV)/bin/activate && ruff check $(PY_DIRS) && ruff format --check $(PY_DIRS) \
	  && snakefmt --check Snakefile workflow/rules && snakemake --lint

bench: setup
	. $(VENV)/bin/activate && python benchmarks/bench_process_sets.py && python benchmarks/bench_train_step.py \
		&& python benchmarks/bench_overlap.py && python benchmarks/bench_reward.py && python benchmarks/bench_toy_step.py

# One NVIDIA GPU with the GPU stack (envs/gpu.txt) in the active environment: rollouts, step times and memory of the
# paper profile's settings in <= 8 minutes, no Hub (README, "GPU check"); refuses in one line without a GPU.
gpu-check:
	bash benchmarks/gpu_check.sh

# HTML report (tables, figures, captions, provenance) of the config's profile, from the results already built:
# `make report CONFIG=config/paper.yaml` for the paper profile.
report: setup
	. $(VENV)/bin/activate && python -m grpo_prm.config $(CONFIG) > /dev/null \
	  && profile=$$(python -m grpo_prm.config $(CONFIG) | sed -n 's/^profile: //p') \
	  && mkdir -p results/$$profile && snakemake --configfile $(CONFIG) --report results/$$profile/report.html $(SNAKEMAKE_ARGS)

# Golden copies of the cut-down workflow's tables and figure data (config/ci.yaml -> tests/golden/ci/), rebuilt from
# scratch in a temporary folder; run after a change that moves the numbers on purpose, and commit the result.
golden: setup
	. $(VENV)/bin/activate && python -m tests.golden

# The run-derived numbers of README.md and docs/*.md (their <!-- numbers:NAME --> blocks), rewritten from paper_figures/default/.
readme: setup
	. $(VENV)/bin/activate && python -m grpo_prm.readme --figures paper_figures/default
