# Two commands for a fresh Debian machine (as root): `make rebuild` and `make test`.
# Each sets up only what is missing: system packages with apt, Python packages in .venv.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.drtool-installed
# The lab inventory only: a placeholder Git token for the simulated `flux bootstrap github`.
# Real inventories never get a default token.
LAB_TOKEN ?= lab-placeholder-token

.PHONY: setup system browser venv rebuild test bench lab-down clean

setup: system venv

system:
	@missing=""; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v sudo >/dev/null 2>&1 || missing="$$missing sudo"; \
	command -v git >/dev/null 2>&1 || missing="$$missing git"; \
	command -v unshare >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: run as root to install$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The HTML report is checked in a real headless browser; without one that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  echo "installing chromium (headless check of the HTML report)" && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: the browser check of the HTML report will be skipped"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

rebuild: setup
	$(BIN)/inv lab.up
	GITHUB_TOKEN="$${GITHUB_TOKEN:-$(LAB_TOKEN)}" $(BIN)/inv rebuild -i .lab/inventory.yaml --yes

# Two workers, not more: lab tests assert timings (detection within 5 s, the simulator within its
# critical path + 1 s), and more workers than a small CI machine has cores make those noisy.
test: setup browser
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile

bench: setup
	$(BIN)/python -m tests.bench.run

lab-down: venv
	$(BIN)/inv lab.down

clean: lab-down
	rm -rf runs .pytest_cache
