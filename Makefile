# The two commands that matter: `make serve` and `make test`. Both build .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve emulate test test-fast fuzz check fmt bench bench-forges bench-instructions bench-dashboard bench-emulator soak clean bwrap chromium schema-template

$(STAMP): pyproject.toml
	@echo "buildsd: installing into $(VENV) (the first time takes about a minute)..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	@touch $(STAMP)

serve: $(STAMP) bwrap
	$(BIN)/buildsd serve

# buildsd as a test double (docs/testing.md): prints one JSON line, then serves.
emulate: $(STAMP)
	$(BIN)/buildsd emulate

# The emulator's bars alone (bench/emulator.py): start-up, reset, accounts, a simulated build.
bench-emulator: $(STAMP)
	$(BIN)/python -m bench.emulator $(BENCH_ARGS)

# After adding a migration: the SQL new SQLite databases are made from (migrations/__init__.py).
schema-template: $(STAMP)
	$(BIN)/python -m buildsd.migrations.template

# The suite under coverage: src/ in this process and in every Python process it starts. Prints
# the total; the whole report goes to coverage-report.txt. COVERAGE_APPEND=1 adds this run to the
# previous one (.ci/run: SQLite, then PostgreSQL, then the floor in .ci/coverage-floor).
# PYTEST_WORKERS pytest-xdist processes share the tests, each with databases of its own
# (tests/conftest.py); PYTEST_WORKERS=0 runs them in this one process.
PYTEST_WORKERS ?= 2
test: $(STAMP) bwrap chromium
	@test -n "$(COVERAGE_APPEND)" || $(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	@$(BIN)/coverage combine -q --append
	@$(BIN)/coverage report > coverage-report.txt || true
	@echo "coverage of src/: $$(awk '/^TOTAL/ {print $$NF}' coverage-report.txt) (details: coverage-report.txt)"

# The suite without the tests that start real server processes (marked slow), without coverage.
test-fast: $(STAMP) bwrap
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

# Every build runs in bubblewrap (docs/builds.md). As root it is installed when missing;
# otherwise `serve` says builds are unconfined and the sandbox tests skip, saying why.
bwrap:
	@command -v bwrap >/dev/null || [ "$$(id -u)" != 0 ] \
		|| (apt-get update -qq && apt-get install -y -qq bubblewrap) \
		|| echo "bubblewrap is missing (apt-get install bubblewrap): builds cannot be sandboxed"

# The dashboard's browser tests drive Debian's chromium through Playwright (never `playwright
# install`). As root it is installed when missing; otherwise those tests skip, saying why.
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] \
		|| (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium is missing (apt-get install chromium): the dashboard's browser tests skip"

# Spec fuzzing, long: FUZZ_EXAMPLES examples per operation and mode (15 in `make test`), fresh
# ones every run; a failure prints how to reproduce it.
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/fuzz/test_schemathesis.py $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check src tests bench soak
	$(BIN)/ruff format --check src tests bench soak
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench soak
	$(BIN)/ruff check --fix src tests bench soak

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| (echo "wrk is needed: apt-get install wrk" && exit 1)
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(MAKE) bench-forges

# Forge updates under load (issue 16, bench/forges.py): 1,000 builds finishing while the forge
# answers in 200 ms, on SQLite, then on a throwaway PostgreSQL database when one answers.
bench-forges: $(STAMP)
	$(BIN)/python -m bench.forges $(FORGES_ARGS)
	$(BIN)/python -m bench.forges --postgres $(FORGES_ARGS)

# The dashboard's bars (docs/dashboard.md): 100 SSE watchers of a build writing 1,000 lines/s,
# and its build-list page at 100,000 builds; writes bench/out/dashboard.json.
bench-dashboard: $(STAMP)
	$(BIN)/python -m bench.dashboard $(BENCH_ARGS)

# Instructions per request under valgrind, app in-process: a measure the machine's neighbours
# do not move; writes docs/benchmarks-instructions.md.
bench-instructions: $(STAMP)
	@command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind) \
		|| (echo "valgrind is needed: apt-get install valgrind" && exit 1)
	$(BIN)/python -m bench.instructions $(BENCH_ARGS)

# Chaos under load (PostgreSQL if reachable, then SQLite); writes docs/reliability.md.
soak: $(STAMP)
	$(BIN)/python -m soak.run $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .buildsd .mypy_cache .ruff_cache build src/*.egg-info
