# Two entry points: `make demo` and `make test`. Each installs what it needs on a fresh machine.
# `make test-fast` is the inner loop: the suite without kill tests, the fault suite and the Azurite variants.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov

.PHONY: demo test test-fast bench install clean
# pytest-xdist workers: one more than the two cores of the machines this runs on, as about a third of the suite's
# time is waiting (the fault suite's backoffs, real Retry-After, Azurite), not computing (make test WORKERS=n).
WORKERS ?= 3

demo: $(VENV)/.installed
	$(BIN)/graphlake demo

test: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed shellcheck java
	$(BIN)/pytest -n $(WORKERS)

test-fast: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed shellcheck java
	$(BIN)/pytest -n $(WORKERS) -m "not kill and not fault_suite and not azurite"

bench: $(VENV)/.installed
	$(BIN)/python bench/run_all.py

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

# Azurite, the Azure Storage emulator, and Microsoft's Kusto parser that checks the alert rules' KQL
# (@kusto/language-service-next), pinned in package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov pins many packages of its own, so it lives in its own virtualenv.
$(CHECKOV_VENV)/.installed: infra/requirements-checks.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --disable-pip-version-check -q -r infra/requirements-checks.txt
	touch $@

.PHONY: shellcheck
shellcheck:
	@command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }

# Java for pyspark's local mode in tests/read/test_spark.py: Debian's default JRE (OpenJDK 17 on bookworm; pyspark 4
# needs 17 or later). Slim images lack the man folder the JRE's postinst links into.
.PHONY: java
java:
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || { mkdir -p /usr/share/man/man1 && \
		apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null; }

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules lake state .demo
