# provisiond: `make run` serves on 127.0.0.1:8080 with ./data; `make test`
# runs the whole suite. Both first install what is missing, quickly when
# everything is there: `make run` only what building and running need (Debian
# libraries), `make test` the test tools too (Debian and Python packages).

SWIFT        ?= swift
HOST         ?= 127.0.0.1
PORT         ?= 8080
DATA_DIR     ?= ./data
RUN_DEB_PACKAGES  := libsqlite3-dev libcurl4-openssl-dev libnghttp2-dev libpq-dev pkg-config
# chromium, chromium-driver and selenium: the status page's browser test.
# prometheus: for promtool, which checks the /metrics exposition in the e2e tests.
# postgresql: the server the tests run the PostgreSQL store against (Tests/pg/postgres.sh), and psql.
# valgrind: the instruction counts of `make bench` (bench/instructions.sh).
TEST_DEB_PACKAGES := curl openssl wrk nginx-light chromium chromium-driver prometheus postgresql valgrind
PY_PACKAGES  := standardwebhooks openapi-spec-validator pytest requests schemathesis selenium
PY_IMPORTS   := standardwebhooks, openapi_spec_validator, pytest, requests, schemathesis, selenium
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PG_TEST      := Tests/pg/postgres.sh

.PHONY: run build release test test-suites sanitize-suites status-page-screenshot deps deps-run deps-debian deps-python test-swift test-e2e test-contract test-chaos test-fuzz-corpus check-openapi chaos chaos-postgres fuzz sanitize bench bench-all clean

run: release
	.build/release/provisiond serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

build: deps-run
	$(SWIFT) build

release: deps-run
	$(SWIFT) build -c release

test: deps check-openapi
	$(call with_test_postgres,$(MAKE) --no-print-directory test-suites)

test-suites: test-swift test-fuzz-corpus test-e2e test-contract test-chaos

# Runs $(1) with PROVISIOND_TEST_POSTGRES set to the admin URL of a PostgreSQL
# server of the tests' own (its data under .build/pg-test, a free port on
# 127.0.0.1), and stops the server after, also when $(1) fails or is interrupted.
define with_test_postgres
	@url=$$($(PG_TEST) start) || exit 1; \
	trap '$(PG_TEST) stop' INT TERM HUP; \
	PROVISIOND_TEST_POSTGRES="$$url" $(1); status=$$?; \
	$(PG_TEST) stop; exit $$status
endef

# Everything the tests, benchmarks and fuzzers use.
deps: deps-debian deps-python

# The Debian packages listed in $(1) that are not installed yet.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

# What building and running need: the C libraries and pkg-config.
deps-run:
	$(call apt_install,$(RUN_DEB_PACKAGES))

deps-debian:
	$(call apt_install,$(RUN_DEB_PACKAGES) $(TEST_DEB_PACKAGES))

deps-python:
	@python3 -c "import $(PY_IMPORTS)" 2>/dev/null || \
		python3 -m pip install -q --disable-pip-version-check $(PY_PACKAGES)

check-openapi:
	python3 -m openapi_spec_validator openapi.yaml

# The store tests run twice: on SQLite, then on the test PostgreSQL (tests of
# SQLite itself skip on that pass).
test-swift: build
	$(WITH_POSTGRES) PROVISIOND_TEST_POSTGRES="$$url" $(SWIFT) test && \
		PROVISIOND_TEST_STORE=postgres PROVISIOND_TEST_POSTGRES="$$url" $(SWIFT) test

# A recipe line that begins with this has the tests' PostgreSQL server
# running, its admin URL in $$url, and stops it when the line ends, whatever
# its outcome.
# The test PostgreSQL's admin URL in $$url: the one `make test` started for all
# its steps, else one started for this recipe and stopped when it ends.
WITH_POSTGRES = if [ -n "$${PROVISIOND_TEST_POSTGRES:-}" ]; then url=$$PROVISIOND_TEST_POSTGRES; \
	else url=$$(Tests/pg/postgres.sh start) && trap 'Tests/pg/postgres.sh stop' EXIT; fi &&

# End-to-end tests: the built binary, real receivers, curl, a Standard
# Webhooks verifier we did not write, and the status page in headless Chromium.
# Twice: on SQLite, then on PostgreSQL (a fresh database per data dir, the
# SQLite-only tests skipped, and Tests/e2e/test_postgres.py's several
# instances on one database).
test-e2e: build
	PROVISIOND_BIN=$(CURDIR)/.build/debug/provisiond python3 -m pytest -q Tests/e2e
	$(WITH_POSTGRES) PROVISIOND_TEST_STORE=postgres PROVISIOND_TEST_POSTGRES="$$url" \
		PROVISIOND_BIN=$(CURDIR)/.build/debug/provisiond python3 -m pytest -q Tests/e2e

# docs/status-page.png again: the status page test's three environments, at 1280x800.
status-page-screenshot: deps build
	STATUS_PAGE_SCREENSHOT=$(CURDIR)/docs/status-page.png PROVISIOND_BIN=$(CURDIR)/.build/debug/provisiond \
		python3 -m pytest -q Tests/e2e/test_status_page.py -k three_environments

# The fuzzers' committed corpus (seeds and every crash found) replayed as
# regression inputs; a trap fails the run.
test-fuzz-corpus: build
	.build/debug/FuzzHTTPParser Tests/Fuzz/corpus/http-parser
	.build/debug/FuzzRequestDecoding Tests/Fuzz/corpus/request-decoding

# libFuzzer with AddressSanitizer on each target: make fuzz FUZZ_SECONDS=300.
FUZZ_SECONDS ?= 60
fuzz: deps-debian
	Tests/Fuzz/run.sh $(FUZZ_SECONDS)

# schemathesis: requests generated from openapi.yaml against the real binary.
test-contract: build
	PROVISIOND_BIN=$(CURDIR)/.build/debug/provisiond Tests/contract/schemathesis.sh

# A short chaos run (500 tenants, one kill -9, one SIGTERM) is part of the
# suite, on SQLite and on 2 instances sharing PostgreSQL.
test-chaos: build
	python3 bench/chaos.py --n 500 --crashes 1 --bin $(CURDIR)/.build/debug/provisiond
	$(WITH_POSTGRES) python3 bench/chaos.py --n 500 --crashes 1 --bin $(CURDIR)/.build/debug/provisiond \
		--postgres "$$url" --instances 2

# The full chaos run: make chaos N=2000 to change its size. make chaos-postgres:
# the same with INSTANCES processes (default 2) on one PostgreSQL database,
# each kill -9 or the SIGTERM hitting one of them.
N ?= 20000
INSTANCES ?= 2
chaos: deps release
	python3 bench/chaos.py --n $(N) --crashes 3

chaos-postgres: deps release
	$(WITH_POSTGRES) python3 bench/chaos.py --n $(N) --crashes 3 --postgres "$$url" --instances $(INSTANCES)

# Sanitizers: the Swift suites, then the service built with the same
# sanitizer through the end-to-end tests (a report stops the process, which
# fails the tests). LeakSanitizer is off for AddressSanitizer: its only
# reports are rooted in Foundation (Data(contentsOf:), Process) and XCTest
# internals; the service's memory bound has a test of its own, skipped here
# because ASan's quarantine inflates memory by design.
SANITIZER_E2E := Tests/e2e -k "not memory_stays_bounded"
sanitize: deps
	$(call with_test_postgres,$(MAKE) --no-print-directory sanitize-suites)

sanitize-suites:
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) build --sanitize=thread --scratch-path .build-tsan --product provisiond
	TSAN_OPTIONS="halt_on_error=1 exitcode=66" PROVISIOND_BIN=$(CURDIR)/.build-tsan/debug/provisiond python3 -m pytest -q $(SANITIZER_E2E)
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --sanitize=address --scratch-path .build-asan
	$(SWIFT) build --sanitize=address --scratch-path .build-asan --product provisiond
	ASAN_OPTIONS="detect_leaks=0:halt_on_error=1" PROVISIOND_BIN=$(CURDIR)/.build-asan/debug/provisiond python3 -m pytest -q $(SANITIZER_E2E)

# Issue 12's table: provisiond beside the limits of what it is built on (nginx,
# SQLite's batched inserts, one libcurl-multi thread), each measured in the
# same run, as ratios; plus the callgrind instruction counts. 3 to 5 minutes;
# BENCH_QUICK=1 for a quick check. Also written to bench/last-run.md.
bench: deps release
	bench/table.sh

# Every benchmark script once (backlog and outage included), raw output.
bench-all: deps release
	bench/run-all.sh

clean:
	rm -rf .build
