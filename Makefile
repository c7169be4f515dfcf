# povwatch — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
# uv on PATH if there is one, else the module bootstrapped with pip (target `uv`).
UV ?= $(shell command -v uv >/dev/null 2>&1 && echo uv || echo $(PYTHON) -m uv)
export UV_LINK_MODE ?= copy
# Compiled bytecode in the venv: this environment sets PYTHONDONTWRITEBYTECODE, so without it
# every process recompiles ~2,300 modules (~3 s with Great Expectations).
export UV_COMPILE_BYTECODE ?= 1
SCALE ?= S

.PHONY: demo test bench lint fmt install uv deps shell clean airflow

# Debian packages the reports need: a CJK font for the PDFs, pdftoppm and Chromium to look at
# them in the tests. Installed only when missing; skipped (with a note) when not root.
DEB_PACKAGES := fonts-wqy-microhei poppler-utils chromium

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null \
	      || echo "note: could not install $$missing (PDF/screenshot tests will skip)"; \
	  else echo "note: not root, not installing $$missing (PDF/screenshot tests will skip)"; fi; \
	fi

install: uv deps
	@$(UV) sync --frozen --all-extras --quiet
	@echo "install: .venv in sync with uv.lock ($$(grep -c '^name = ' uv.lock) packages locked)"
	@# the SFTP delivery test starts a real OpenSSH server on loopback (Debian openssh-server)
	@command -v sshd >/dev/null 2>&1 || test -x /usr/sbin/sshd || \
		{ command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		  { apt-get update -qq >/dev/null 2>&1 || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		  openssh-server >/dev/null 2>&1; } || echo "note: sshd not installed; the SFTP test will skip"

demo: install
	@POVWATCH_CMD="$(UV) run povwatch" $(UV) run --frozen povwatch demo

# A shell with .venv on PATH: plain `povwatch …` works there (`exit` to leave).
shell: install
	@echo "shell: povwatch is on PATH here (.venv/bin); type exit to leave"
	@$(UV) run --frozen $${SHELL:-bash}

test: install
	@# two workers (this machine has 2 cores); a test file stays on one worker, so its module
	@# fixtures are built once
	$(UV) run --frozen pytest -q -n 2 --dist loadfile --durations=15

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

fmt: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench: install
	$(UV) run --frozen python -m bench.run --scale $(SCALE)

clean:
	rm -rf data .pytest_cache

# Airflow 3 on this machine: scheduler (LocalExecutor), API server and UI, DAG processor and
# triggerer in one process tree; metadata (SQLite) under ./data/airflow; the project's dags/.
# Data paths are absolute; override any of them (or POVWATCH_START_MONTH, ...) on the command line.
AIRFLOW_PORT ?= 8080
airflow: export AIRFLOW_HOME ?= $(CURDIR)/data/airflow
airflow: export AIRFLOW__CORE__DAGS_FOLDER = $(CURDIR)/dags
airflow: export AIRFLOW__CORE__LOAD_EXAMPLES = False
# SQLite's default 5 s lock wait is too short on a busy 2-core machine ("database is locked").
airflow: export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db?timeout=60
airflow: export AIRFLOW__CORE__PARALLELISM = 4
airflow: export AIRFLOW__API__WORKERS = 1
airflow: export AIRFLOW__API__PORT = $(AIRFLOW_PORT)
airflow: export AIRFLOW__CORE__EXECUTION_API_SERVER_URL = http://localhost:$(AIRFLOW_PORT)/execution/
airflow: export POVWATCH_LANDING ?= $(CURDIR)/data/landing
airflow: export POVWATCH_DB ?= $(CURDIR)/data/warehouse.duckdb
airflow: export POVWATCH_OUTBOX ?= $(CURDIR)/data/outbox
airflow: install
	@mkdir -p "$$AIRFLOW_HOME" "$$POVWATCH_LANDING"
	@export PATH="$(CURDIR)/.venv/bin:$$PATH"; \
	airflow db migrate >/dev/null && \
	airflow pools set povwatch_warehouse 1 "povwatch DuckDB writer: one at a time" >/dev/null && \
	echo "pool povwatch_warehouse (1 slot) ready; starting airflow standalone (Ctrl-C stops it)" && \
	{ setsid airflow standalone > "$$AIRFLOW_HOME/standalone.log" 2>&1 & pid=$$!; \
	  stop() { trap - INT TERM EXIT; kill -TERM -- -$$pid 2>/dev/null; sleep 5; \
	           kill -KILL -- -$$pid 2>/dev/null; exit 0; }; \
	  trap stop INT TERM EXIT; \
	  until curl -s -o /dev/null "http://localhost:$(AIRFLOW_PORT)/api/v2/monitor/health"; do \
	    kill -0 $$pid 2>/dev/null || { tail -20 "$$AIRFLOW_HOME/standalone.log"; exit 1; }; sleep 2; done; \
	  echo "Airflow UI:  http://localhost:$(AIRFLOW_PORT)   (log: $$AIRFLOW_HOME/standalone.log)"; \
	  echo "login:       admin / $$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")"; \
	  echo "DAGs:        povwatch_monthly, povwatch_ingest, povwatch_feedback (paused; landing $$POVWATCH_LANDING)"; \
	  echo "stop:        Ctrl-C (stops every Airflow process it started)"; \
	  wait $$pid; }
