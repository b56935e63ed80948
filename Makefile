# Two commands do all the set-up on a fresh machine:
#   make lab    install into .venv and open the labs in JupyterLab
#   make test   install the same and run every test (what CI runs)
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab test install lint bench clean

$(STAMP): pyproject.toml scripts/install.sh
	python3 -m venv $(VENV)
	scripts/install.sh $(PY) lab,test
	$(PY) -m ftlab prepare
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	FTLAB_RUNS=$$(mktemp -d) $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider \
	  --durations=15 --timeout=1200

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/step_overhead.py

clean:
	rm -rf $(VENV)
