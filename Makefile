# mailboat: `make run` starts the server on the embedded default; `make test` runs the whole suite.
PYTHON  ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
# Debian peers the interop tests talk to (SPEC "Set-up"); installed when run as root with apt.
DEBIAN_TEST_PACKAGES = postfix swaks libnet-ssleay-perl libio-socket-ssl-perl chromium nsd dovecot-lmtpd dovecot-imapd opendkim opendkim-tools pflogsumm

.PHONY: run test test-deps install bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/mailboat serve $(if $(CONFIG),--config $(CONFIG))

# Installs the Debian peers when we are root and apt is there; elsewhere the tests that need them
# skip with a reason (and fail under CI=true). Postfix is installed unconfigured: we only need its
# smtp-source/smtp-sink tools and a binary the benchmarks configure themselves.
test-deps:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian test peers:$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    (apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	     (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null)) ; \
	  else echo "not root or no apt: tests needing$$missing will skip"; fi; \
	fi

test: $(BIN)/.installed test-deps
	$(BIN)/python -m pytest

# Everything issue 7 lists, in one run (about 8 minutes): throughput vs Postfix and smtp-sink,
# latency, idle-connection memory, trace and DKIM micro-benchmarks, and bench/relay.sh when it
# exists (run by accept.sh). uvloop (the optional extra "speed") is installed first.
bench: $(BIN)/.installed test-deps
	$(BIN)/pip install --quiet -e '.[speed]' || echo "uvloop not installed: mailboat runs on asyncio's loop"
	bash bench/accept.sh

clean:
	rm -rf $(VENV) mailboat-data .pytest_cache
