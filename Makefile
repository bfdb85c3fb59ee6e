# The two commands the README promises: `make demo` and `make test`.
# Both create .venv on first use and install the project (and, as root, the Debian tools the
# tests and benchmarks need), so they work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PORT    ?= 1053
APT_PKGS := dnsutils knot knot-dnsutils dnsperf buildah mmdebstrap umoci runc iproute2
# What building kdns's C extension (kdns/server/_hotpath.c) needs.
BUILD_PKGS := gcc python3-dev
# clang with libFuzzer and the sanitizer runtimes, for the C replay's fuzz target (fuzz/native/).
FUZZ_NATIVE_PKGS := clang-14 libclang-rt-14-dev

.PHONY: demo test lint debs build-debs venv fuzz fuzz-native fuzz-native-short

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python build-debs
	$(BIN)/pip install -q -e '.[test,fast]'

# Debian packages: to build the C extension (build-debs), and used by tests (dig, knotd for zone
# comparison) and bench (dnsperf) (debs); installed only when missing, and only as root.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: install $$missing yourself"; fi; \
	fi
endef

build-debs:
	$(call apt_install,$(BUILD_PKGS))

debs:
	$(call apt_install,$(APT_PKGS) $(FUZZ_NATIVE_PKGS))

demo: venv
	$(BIN)/kdns -conf Corefile.example -dns.port $(PORT)

lint: venv
	$(BIN)/ruff check kdns tests deploy fuzz $(wildcard bench)
	$(BIN)/mypy
	gcc -fsyntax-only -Wall -Wextra -Wno-missing-field-initializers -Werror \
	  -I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" kdns/server/_hotpath.c

test: venv debs lint
	$(BIN)/python -m pytest -q

# The long fuzzing run (fuzz/README.md): FUZZ_RUNS inputs per target, fixed seed; `make test` runs a
# short one. Findings, corpora and logs go to FUZZ_DIR.
FUZZ_RUNS ?= 1000000
FUZZ_SEED ?= 1
FUZZ_DIR  ?= /tmp/kdns-fuzz
fuzz: venv
	$(BIN)/python -m fuzz.campaign --runs $(FUZZ_RUNS) --seed $(FUZZ_SEED) --workdir $(FUZZ_DIR)

# The C replay's fuzz target (fuzz/native/README.md): a 30 s seeded run (pytest runs the same one in
# `make test`, tests/fuzz_native/), and the long run: a million inputs, summary in fuzz/native/build/.
fuzz-native-short: venv debs
	$(BIN)/python fuzz/native/run.py --build --seconds 30

fuzz-native: venv debs
	$(BIN)/python fuzz/native/run.py --build --runs 1000000 --report fuzz/native/build/long.json
