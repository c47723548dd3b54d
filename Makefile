# Every target bootstraps its own virtualenv on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv bytecode test lint unit e2e up demo bench bench-deps test-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# xds-protos ships an old copy of OpenTelemetry's protos at the same paths as
	@# opentelemetry-proto; whichever is installed last wins. The collector needs the
	@# current ones (docs/observability.md, "OpenTelemetry's protos twice").
	$(BIN)/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
	  "opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	$(BIN)/python tools/vendor_js.py
	touch $(STAMP)

# Ami's own modules and the examples' apps byte-compiled ahead, as an installed wheel
# is (an editable install is not; with PYTHONDONTWRITEBYTECODE set nothing ever writes
# them): every process `ami up` starts then skips compiling its sources. Up-to-date
# files are skipped.
bytecode: venv
	$(BIN)/python -m compileall -q src examples >/dev/null

lint: venv
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest tests/unit -q

e2e: venv test-deps
	$(BIN)/pytest tests/e2e -q

# The one command CI runs: lint, types, layers and every test.
test: lint test-deps bytecode
	$(BIN)/pytest -q

# Debian packages the tests drive: a real Prometheus (scrapes the control plane), git
# (the GitOps tests make repositories; the control plane fetches them), Chromium (the
# dashboard test, through Playwright with the system browser), and Node.js and Perl
# (Tekton's own examples have steps in those languages).
test-deps:
	@(command -v chromium >/dev/null && command -v prometheus >/dev/null && \
	  command -v git >/dev/null && command -v node >/dev/null && \
	  command -v perl >/dev/null) || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium prometheus git nodejs perl)

# The main job: the example shop, with sidecars, gateway and control plane.
up: venv bytecode
	$(BIN)/ami up examples/shop

demo: venv
	$(BIN)/ami controlplane --config examples/mesh

bench: venv bench-deps bytecode
	$(BIN)/python bench/xds_convergence.py --quick
	$(BIN)/python bench/runtime.py --quick
	$(BIN)/python bench/telemetry.py --quick

# Load generator and baseline server for bench/runtime.py (Debian packages).
bench-deps:
	@(command -v hey >/dev/null && test -x /usr/sbin/nginx) || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey nginx-light)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
