# ferry's entry points. `make test` is what CI runs (via .ci/run).
CARGO  ?= cargo
PREFIX ?= /usr/local

.PHONY: build test lint install deps

# What the tests need on a fresh Debian machine: btrfs-progs for real pools,
# systemd-analyze to verify the units.
DEB_NEEDS = mkfs.btrfs:btrfs-progs systemd-analyze:systemd

deps:
	@missing=""; for need in $(DEB_NEEDS); do \
		command -v $${need%%:*} >/dev/null 2>&1 || missing="$$missing $${need##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

build:
	$(CARGO) build --release --locked

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Real btrfs pools, real TLS, the real binary: run as root.
test: deps lint
	$(CARGO) test --locked

install: build
	install -D -m 0755 target/release/ferry $(DESTDIR)$(PREFIX)/bin/ferry
