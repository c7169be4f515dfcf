# povwatch — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
# uv on PATH if there is one, else the module bootstrapped with pip (target `uv`).
UV ?= $(shell command -v uv >/dev/null 2>&1 && echo uv || echo $(PYTHON) -m uv)
export UV_LINK_MODE ?= copy

.PHONY: demo test bench lint fmt install uv shell clean

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

install: uv
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
	$(UV) run --frozen pytest -q

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

fmt: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench: install
	$(UV) run --frozen python -m bench.run

clean:
	rm -rf data .pytest_cache
