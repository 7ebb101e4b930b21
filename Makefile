# ferry's entry points. `make test` is what CI runs (via .ci/run).
CARGO  ?= cargo
PREFIX ?= /usr/local

.PHONY: build test lint install deps demo

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

# Two appliances on this machine, paired; a full and an incremental send, one
# scheduled tick, status and histories; then everything it made is removed.
demo: deps build
	bash scripts/demo.sh

# The binary, the systemd units (where systemd looks for local units) and the
# sample config; an existing /etc/ferry/ferry.toml is never overwritten.
install: build
	install -D -m 0755 target/release/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -D -m 0644 systemd/ferry-sender.service $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry-sender.service
	install -D -m 0644 systemd/ferry-receiver.service $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry-receiver.service
	install -D -m 0644 ferry.toml.sample $(DESTDIR)/etc/ferry/ferry.toml.sample
	[ -e $(DESTDIR)/etc/ferry/ferry.toml ] || install -m 0644 ferry.toml.sample $(DESTDIR)/etc/ferry/ferry.toml
