# ferry's entry points. `make test` is what CI runs (via .ci/run).
CARGO  ?= cargo
PREFIX ?= /usr/local

.PHONY: build test lint install deps demo bench bench-deps apt-needs

# What the tests need on a fresh Debian machine: btrfs-progs for real pools,
# systemd-analyze to verify the units, and what the benchmark's quick mode
# (tests/bench_quick.rs) runs: sshd and ssh, btrbk with mbuffer and zstd for its
# tuned variant, ip and tc for the shaped link, GNU time for max RSS; libfaketime
# for the sender under a stepped clock (tests/it/clock_steps.rs).
BENCH_NEEDS = /usr/sbin/sshd:openssh-server ssh:openssh-client btrbk:btrbk mbuffer:mbuffer \
	zstd:zstd ip:iproute2 tc:iproute2 /usr/bin/time:time python3:python3
DEB_NEEDS = mkfs.btrfs:btrfs-progs systemd-analyze:systemd faketime:faketime $(BENCH_NEEDS)

deps:
	@$(MAKE) --no-print-directory apt-needs NEEDS="$(DEB_NEEDS)"

# The benchmark alone needs only its own tools (and btrfs).
bench-deps:
	@$(MAKE) --no-print-directory apt-needs NEEDS="mkfs.btrfs:btrfs-progs $(BENCH_NEEDS)"

# Installs the Debian package of every command:package pair whose command is missing.
apt-needs:
	@missing=""; for need in $(NEEDS); do \
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

# ferry against btrfs send|receive, ssh and btrbk, on loopback and a shaped
# 100 Mbit link; see "Performance" in README.md. BENCH_REPS (3), BENCH_IDLE_SECS
# (60) and BENCH_TASKS (1000) tune it; target/bench/latest.json has the figures.
bench: bench-deps build
	python3 bench/bench.py

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
