# stockflow: the two commands a new user runs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration chaos install bench failover kafka-start kafka-stop clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "stockflow needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/stockflow demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

integration: $(STAMP)
	$(PY) -m pytest tests/integration tests/e2e

# STOCKFLOW_CHAOS=short for the one-minute version
chaos: $(STAMP)
	mkdir -p .stockflow
	STOCKFLOW_CHAOS=$${STOCKFLOW_CHAOS:-long} STOCKFLOW_CHAOS_REPORT=$${STOCKFLOW_CHAOS_REPORT:-.stockflow/chaos-report.json} \
		$(PY) -m pytest tests/chaos -m chaos -s $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/stockflow bench $(ARGS)

# fail-over (SIGKILL one of two workers) and empty-store recovery times
failover: $(STAMP)
	$(VENV)/bin/stockflow failover $(ARGS)

kafka-start: $(STAMP)
	$(VENV)/bin/stockflow kafka start

kafka-stop: $(STAMP)
	$(VENV)/bin/stockflow kafka stop

clean:
	-$(VENV)/bin/stockflow kafka stop 2>/dev/null
	rm -rf $(VENV) .stockflow .pytest_cache .hypothesis
