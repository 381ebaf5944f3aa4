# mailboat: `make run` starts the server on the embedded default; `make test` runs the whole suite.
PYTHON  ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
# Debian peers the interop tests talk to (SPEC "Set-up"); installed when run as root with apt.
DEBIAN_TEST_PACKAGES = postfix swaks libnet-ssleay-perl libio-socket-ssl-perl chromium nsd dovecot-lmtpd dovecot-imapd opendkim opendkim-tools pflogsumm
# The optional native Received reader (native/, README "Native trace reader") builds offline from
# Debian's packaged Rust crates with the machine's cargo.
DEBIAN_NATIVE_PACKAGES = librust-pyo3-dev librust-regex-dev
CARGO   ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)

.PHONY: run lint test test-deps install native native-deps bench clean

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

# The native reader: `mailboat/_native*.so` beside the Python package (the editable install finds
# it there). Without cargo or the crates, mailboat keeps its pure-Python reader and says so.
native-deps:
	@missing=""; for p in $(DEBIAN_NATIVE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's Rust crates for the native reader:$$missing"; \
	  (apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null)); \
	fi

native: $(BIN)/.installed native-deps
	@if [ -x "$(CARGO)" ] && ls -d /usr/share/cargo/registry/pyo3-0.* /usr/share/cargo/registry/regex-1.* >/dev/null 2>&1; then \
	  suffix=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'); \
	  (cd native && PYO3_PYTHON=$(abspath $(BIN)/python) $(CARGO) build --release --quiet) && \
	  cp native/target/release/lib_native.so src/mailboat/_native$$suffix.tmp && \
	  mv src/mailboat/_native$$suffix.tmp src/mailboat/_native$$suffix && \
	  echo "native Received reader built: src/mailboat/_native$$suffix"; \
	else echo "cargo, or Debian's librust-pyo3-dev and librust-regex-dev, missing: the trace reader stays pure Python"; fi

# Style (ruff), types (mypy: strict on the core packages) and the layer rules of docs/architecture.md
# (import-linter), all configured in pyproject.toml. CI runs it before the tests.
lint: $(BIN)/.installed
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(BIN)/.installed test-deps native
	$(BIN)/python -m pytest

# Every benchmark, in one run (about 8 minutes): throughput vs Postfix and smtp-sink,
# latency, idle-connection memory, trace and DKIM micro-benchmarks, and bench/relay.sh when it
# exists (run by accept.sh). mailboat runs as installed, on its default settings; the extra
# "bench" (mail-parser, the trace benchmark's baseline; py-spy for --profile) is installed first.
bench: $(BIN)/.installed test-deps native
	$(BIN)/pip install --quiet -e '.[bench]' || echo "mail-parser not installed: the trace benchmark is skipped"
	bash bench/accept.sh

clean:
	rm -rf $(VENV) mailboat-data .pytest_cache native/target src/mailboat/_native*.so
