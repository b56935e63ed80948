# Two commands do all the set-up on a fresh machine:
#   make lab    install into .venv and open the labs in JupyterLab
#   make test   install the same and run every test (what CI runs)
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab test install lint bench clean student class class-install lock drift

$(STAMP): pyproject.toml constraints.txt scripts/install.sh
	python3 -m venv $(VENV)
	scripts/install.sh $(PY) lab,test,class,track
	$(PY) -m ftlab prepare
	touch $(STAMP)

install: $(STAMP)

# make lab LAB_PORT=8890 LAB_OPEN_BROWSER=no
#   LAB_PORT          the port (empty: Jupyter's choice, 8888 or the next free one)
#   LAB_OPEN_BROWSER  yes | no (empty: Jupyter's choice, a browser if it finds one; headless,
#                     it finds none and says so). Either way Jupyter prints the URL with its token.
# As root (containers, cloud VMs, CI) Jupyter refuses to start without --allow-root: add it, say so.
LAB_PORT         ?=
LAB_OPEN_BROWSER ?=
LAB_AS_ROOT       = $(filter 0,$(shell id -u))
LAB_FLAGS         = $(if $(LAB_PORT),--port=$(LAB_PORT)) \
                    $(if $(filter no,$(LAB_OPEN_BROWSER)),--no-browser) \
                    $(if $(filter yes,$(LAB_OPEN_BROWSER)),--ServerApp.open_browser=True) \
                    $(if $(LAB_AS_ROOT),--allow-root)
LAB_ROOT_NOTE     = make lab: running as root, so Jupyter gets --allow-root (it refuses root without it)

lab: $(STAMP)
	$(if $(filter-out yes no,$(LAB_OPEN_BROWSER)),$(error LAB_OPEN_BROWSER=$(LAB_OPEN_BROWSER): use yes or no))
	$(if $(LAB_AS_ROOT),@echo "$(LAB_ROOT_NOTE)")
	$(strip $(VENV)/bin/jupyter lab notebooks/ $(LAB_FLAGS))

# make student: the student version of every notebook (solutions replaced by stubs, checks
# kept; built with nbgrader's preprocessors, docs/exercises.md) in STUDENT_DIR, then opened in
# JupyterLab like make lab (same LAB_PORT / LAB_OPEN_BROWSER knobs).
STUDENT_DIR ?= student

student: $(STAMP)
	$(PY) -m ftlab.exercises student $(STUDENT_DIR)
	$(if $(LAB_AS_ROOT),@echo "$(LAB_ROOT_NOTE)")
	$(strip $(VENV)/bin/jupyter lab $(STUDENT_DIR)/ $(LAB_FLAGS))

# Two pytest workers, each running whole files and notebooks in the order given (conftest.py
# groups them; notebooks first, the longest work). Beside a busy neighbour each drops to one
# thread (ftlab/threads.py): two such processes get more done on 2 cores than one process on
# two threads (benchmarks/contention.py). TEST_WORKERS= runs everything in one process.
TEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(VENV)/bin/ruff check conftest.py src tests benchmarks
	FTLAB_RUNS=$$(mktemp -d) $(PY) -m pytest notebooks tests --nbval-lax --nbval-current-env -p no:cacheprovider \
	  $(TEST_WORKERS) --durations=25 --timeout=1800

lint: $(STAMP)
	$(VENV)/bin/ruff check conftest.py src tests benchmarks

# make lock: after a green make test, record the versions it passed with (constraints.txt,
# which the install uses). make drift: the newest versions the ranges in pyproject.toml allow,
# installed into a scratch environment, against the fast tests and the generate() check
# (docs/versions.md). Neither touches .venv.
lock: $(STAMP)
	scripts/lock.sh $(PY)

drift:
	scripts/drift.sh

# A class on one server (as root; docs/instructor.md): install it once into CLASS_ROOT (its own
# venv, the student notebooks, the shared cache prepared and sealed), then start JupyterHub.
CLASS_ROOT ?= /srv/ftlab-class

class-install:
	classroom/install.sh $(CLASS_ROOT)

class:
	classroom/start.sh $(CLASS_ROOT)

bench: $(STAMP)
	$(PY) benchmarks/step_overhead.py

clean:
	rm -rf $(VENV)
