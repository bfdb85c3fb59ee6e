# The two commands the README promises: `make demo` and `make test`.
# Both create .venv on first use and install the project (and, as root, the Debian tools the
# tests and benchmarks need), so they work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PORT    ?= 1053
APT_PKGS := dnsutils knot knot-dnsutils dnsperf buildah mmdebstrap umoci runc iproute2

.PHONY: demo test lint debs venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,fast]'

# Debian packages used by tests (dig, knotd for zone comparison) and bench (dnsperf); root only.
debs:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: install $$missing yourself for the tests that use them"; fi; \
	fi

demo: venv
	$(BIN)/kdns -conf Corefile.example -dns.port $(PORT)

lint: venv
	$(BIN)/ruff check kdns tests $(wildcard bench)
	$(BIN)/mypy

test: venv debs lint
	$(BIN)/python -m pytest -q
