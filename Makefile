# wm-control: `make demo` and `make test` set up .venv when it is missing or older than the set-up
# inputs, then run. Variables: VENV (default .venv), PYTHON (interpreter for a new venv), ARGS.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wm-control-stamp
SETUP_INPUTS := pyproject.toml setup.py setup.cfg requirements/constraints.txt scripts/setup_venv.sh
# Tests and demos stay on loopback and render headless.
RUN_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST MUJOCO_GL=egl AMENT_PREFIX_PATH=$(abspath $(VENV))

.PHONY: demo test lint bench export setup clean-venv

$(STAMP): $(SETUP_INPUTS)
	./scripts/setup_venv.sh $(VENV)

setup: $(STAMP)

demo: $(STAMP)
	$(RUN_ENV) $(VENV)/bin/wm-control-demo $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy wm_control sim

test: lint
	$(RUN_ENV) $(PY) -m pytest $(ARGS)

# The trained fr3-reach model (models/fr3-reach, a model-only checkpoint) -> ONNX + contract + parity report,
# at the deployment budget of configs/deployment/fr3-reach.yaml.
export: $(STAMP)
	$(RUN_ENV) $(VENV)/bin/wm-control-export checkpoint=models/fr3-reach out=exports/fr3-reach deploy=fr3-reach $(ARGS)

bench: $(STAMP)
	$(RUN_ENV) $(PY) bench/sim_speed.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
