# durable-mail: `make dev` runs the whole service locally, `make test` passes the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev fault test chaos lint format install bench bench-quick replay replay-archive screenshots clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required (set PYTHON=python3.11)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Resend's Node SDK, a real client of our Resend-compatible surface (tests/node/drop_in.cjs);
# Node.js and npm from the distribution if missing.
NODE_SDK := .dev/node/node_modules/resend/package.json
$(NODE_SDK):
	command -v npm >/dev/null || (apt-get update && apt-get install -y nodejs npm)
	npm install --prefix .dev/node --no-audit --no-fund --silent resend@6.38.0

# make dev                 Resend if RESEND_API_KEY is set, else the local outbox
# make dev PROVIDER=fake   the bundled fake Resend; `make fault` makes its next sends fail
# make dev PROVIDER=smtp   a local SMTP relay (STARTTLS, AUTH); mail in .dev/smtp/*.eml
# make dev PROVIDER=failover  the fake Resend, then that relay; `make fault KIND=401` moves sends
dev: $(STAMP)
	$(PY) scripts/dev.py --provider $(or $(PROVIDER),auto)

# With `make dev PROVIDER=fake` running: make fault KIND=500|429|timeout [COUNT=2]
fault: $(STAMP)
	$(PY) scripts/fault.py $(or $(KIND),500) --count $(or $(COUNT),1)

test: $(STAMP) $(NODE_SDK)
	$(PY) -m pytest -q -p no:cacheprovider

# Kills workers and the Temporal server under a 300-invite burst; figures in the summary.
chaos: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m chaos tests/chaos

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Fixes what ruff can (imports, upgrades), then formats; `make lint` checks the same.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	$(PY) -m bench.run --quick

# make replay                      every history the current code recorded (tests/histories/*.json)
# make replay ID=invite-<hex>       one workflow, fetched from TEMPORAL_ADDRESS
# make replay DIR=path/to/histories a folder of `temporal workflow show -o json` files
# make replay FILE=invite.json      one such file
# Keys: PAYLOAD_CODEC_KEYS, else .dev/codec_keys (the ones `make dev` made).
replay: $(STAMP)
	$(PY) -m infra.replay $(or $(ID),$(DIR),$(FILE),tests/histories)

# make replay-archive VERSION=0.1.0  a released version's histories (tests/histories/archive/
# VERSION) against that version's code: a git worktree of its commit (infra/releases.py),
# run with this venv, removed after.
replay-archive: $(STAMP)
	$(PY) -m infra.releases replay $(or $(VERSION),0.1.0)

# With `make dev` running: sends one invite, then saves its Web UI page and the outbox page
# to docs/screenshots/. With `make dev PROVIDER=fake`: make screenshots ARGS=--retries (sends
# retried after 500s and a 429). Other sends: ARGS="--no-send --no-outbox NAME=invite-<hex>"
# (headless Chromium from the distribution, installed here if missing).
screenshots: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) scripts/screenshots.py $(ARGS)

clean:
	rm -rf .dev
