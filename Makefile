# order-hub: the two commands a newcomer types are `make run` and `make test`.
# Each one creates or refreshes .venv from the pinned requirements first (a no-op when nothing changed).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

INFRA_PY    := infra/.venv/bin/python
INFRA_STAMP := infra/.venv/.installed
STAGE       ?= dev

.PHONY: run test test-stress lint typecheck unit integration venv browser clean synth infra-check deploy smoke

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "order-hub needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "pip<26.3"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

# The CDK toolchain (≈ 700 MB) lives in its own venv, installed only by the targets that need it.
$(INFRA_STAMP): infra/requirements.txt requirements.txt
	@test -x $(INFRA_PY) || $(PYTHON) -m venv infra/.venv
	$(INFRA_PY) -m pip install --quiet --disable-pip-version-check "pip<26.3"
	$(INFRA_PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	@touch $(INFRA_STAMP)

synth: $(INFRA_STAMP)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} HUB_STAGE=$(STAGE) $(INFRA_PY) infra/app.py

# Synthesise offline, then cfn-lint, cdk-nag and statelint; then the template tests on that synth (and a second
# stage beside it: two stages share no physical name).
infra-check: $(INFRA_STAMP)
	$(INFRA_PY) infra/check.py --outdir test-artifacts/infra
	HUB_INFRA_ASSEMBLY=test-artifacts/infra/cdk.out $(INFRA_PY) -m pytest tests/infra/test_template.py tests/infra/test_stages.py

# Needs AWS credentials; once per account and region first: cd infra && npx aws-cdk@2.1148.1 bootstrap
# CDK_ARGS passes more, e.g. CDK_ARGS="-c shopify_event_source=aws.partner/shopify.com/123/order-hub"
deploy: $(INFRA_STAMP)
	cd infra && npx --yes aws-cdk@2.1148.1 deploy --all -c stage=$(STAGE) $(CDK_ARGS)

# Checks a running hub end to end (local/smoke.py): health, status page, API, one signed order, clean-up.
# Locally: `make run` in one terminal, `make smoke TOKEN=<the printed token>` in another. A deployed stage:
# make smoke BASE_URL=https://<api-id>.execute-api.<region>.amazonaws.com/api TOKEN=... SMOKE_ARGS=--deployed
# BASE_URL and TOKEN travel as HUB_SMOKE_BASE_URL and HUB_OPERATOR_TOKEN (the token never on a command line).
SMOKE_ARGS ?=
smoke: $(STAMP)
	@$(if $(BASE_URL),HUB_SMOKE_BASE_URL='$(BASE_URL)') $(if $(TOKEN),HUB_OPERATOR_TOKEN='$(TOKEN)') \
		$(PY) -m local.smoke $(SMOKE_ARGS)

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used): installed
# here when missing (a no-op when present), with sudo unless root. HUB_CHROMIUM=/path names another binary.
HUB_CHROMIUM ?= /usr/bin/chromium
export HUB_CHROMIUM

browser:
	@if [ -x "$(HUB_CHROMIUM)" ]; then :; \
	elif [ "$(HUB_CHROMIUM)" != /usr/bin/chromium ]; then \
		echo "HUB_CHROMIUM=$(HUB_CHROMIUM) is not an executable" >&2; exit 1; \
	else \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "Installing Debian's chromium for the browser tests"; \
		$$sudo apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium && \
		test -x /usr/bin/chromium; \
	fi

run: $(STAMP)
	HUB_DEMO=$${HUB_DEMO:-1} $(PY) -m local run

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP) browser
	$(PY) -m pytest tests/integration

test: $(STAMP) browser lint typecheck infra-check
	$(PY) -m pytest --ignore=tests/infra/test_template.py --ignore=tests/infra/test_stages.py

# The integration suite with two CPU hogs beside it (a busy laptop, a shared runner). STRESS_ARGS passes
# more, e.g. STRESS_ARGS="--repeat 5 tests/integration/test_payment_lifecycle.py" runs one file five times.
STRESS_ARGS ?=
test-stress: $(STAMP) browser
	$(PY) -m tests.stress $(STRESS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
