# ferry's entry points. `make test` is what CI runs (via .ci/run).
CARGO  ?= cargo
PREFIX ?= /usr/local

# Where `make install` puts things: where systemd, man-db and the shells look for
# locally installed files. DESTDIR stages an install (packaging, tests).
BINDIR     ?= $(PREFIX)/bin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
CONFDIR    ?= /etc/ferry
# The binary to install; empty means `cargo build --release` and its binary.
FERRY_BIN  ?=
BIN         = $(if $(FERRY_BIN),$(FERRY_BIN),target/release/ferry)
# Where `make man` writes the pages.
MAN_OUT    ?= target/man
# Generating pages and completions reads no configuration.
RUN_BIN     = FERRY_CONFIG=/dev/null $(BIN)

.PHONY: build test lint install uninstall man ferry-bin deps demo bench bench-deps apt-needs

# What the tests need on a fresh Debian machine: btrfs-progs for real pools,
# systemd-analyze to verify the units, man-db and groff to render the man pages,
# Prometheus's Python client for its text-format parser (a file, not a command:
# apt-needs accepts paths too), and what the benchmark's quick mode
# (tests/bench_quick.rs) runs: sshd and ssh, btrbk with mbuffer and zstd for its
# tuned variant, ip and tc for the shaped link (nft for the link faults of
# tests/it/link_faults.rs and the link-resume figure), GNU time for max RSS; libfaketime
# for the sender under a stepped clock (tests/it/clock_steps.rs).
BENCH_NEEDS = /usr/sbin/sshd:openssh-server ssh:openssh-client btrbk:btrbk mbuffer:mbuffer \
	zstd:zstd ip:iproute2 tc:iproute2 nft:nftables /usr/bin/time:time python3:python3
DEB_NEEDS = mkfs.btrfs:btrfs-progs systemd-analyze:systemd faketime:faketime man:man-db groff:groff-base \
	/usr/lib/python3/dist-packages/prometheus_client/parser.py:python3-prometheus-client \
	$(BENCH_NEEDS)

deps:
	@$(MAKE) --no-print-directory apt-needs NEEDS="$(DEB_NEEDS)"

# The benchmark alone needs only its own tools (and btrfs).
bench-deps:
	@$(MAKE) --no-print-directory apt-needs NEEDS="mkfs.btrfs:btrfs-progs $(BENCH_NEEDS)"

# Installs the Debian package of every command:package pair whose command is
# missing (or path:package pair whose file is missing).
apt-needs:
	@missing=""; for need in $(NEEDS); do \
		what=$${need%%:*}; \
		{ command -v $$what || test -e $$what; } >/dev/null 2>&1 || missing="$$missing $${need##*:}"; \
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

# ferry against btrfs send|receive, ssh and btrbk, on loopback and shaped
# 100 Mbit and 1 Gbit links, with each end's CPU; see "Performance" in README.md.
# BENCH_REPS (3), BENCH_INC_REPS (7), BENCH_IDLE_SECS (60) and BENCH_TASKS (1000)
# tune it; target/bench/latest.json has the figures.
bench: bench-deps build
	python3 bench/bench.py

# Two appliances on this machine, paired; a full and an incremental send, one
# scheduled tick, status and histories; then everything it made is removed.
demo: deps build
	bash scripts/demo.sh

# The binary only when none was named (FERRY_BIN=path installs that one).
ferry-bin:
	$(if $(FERRY_BIN),@test -x $(FERRY_BIN),$(CARGO) build --release --locked)

# Man pages from the clap definitions: ferry.1, one per command group, one per command.
man: ferry-bin
	rm -rf $(MAN_OUT)
	$(RUN_BIN) man $(MAN_OUT)

# The binary, the systemd units (where systemd looks for local units), man pages,
# shell completions (where bash-completion, zsh and fish look for local ones) and
# the sample config; an existing /etc/ferry/ferry.toml is never overwritten.
# Run `systemctl daemon-reload` afterwards.
install: man
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/ferry
	install -D -m 0644 systemd/ferry-sender.service $(DESTDIR)$(UNITDIR)/ferry-sender.service
	install -D -m 0644 systemd/ferry-receiver.service $(DESTDIR)$(UNITDIR)/ferry-receiver.service
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 0644 $(MAN_OUT)/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(RUN_BIN) completions bash > $(DESTDIR)$(BASHCOMPDIR)/ferry
	$(RUN_BIN) completions zsh > $(DESTDIR)$(ZSHCOMPDIR)/_ferry
	$(RUN_BIN) completions fish > $(DESTDIR)$(FISHCOMPDIR)/ferry.fish
	install -D -m 0644 ferry.toml.sample $(DESTDIR)$(CONFDIR)/ferry.toml.sample
	[ -e $(DESTDIR)$(CONFDIR)/ferry.toml ] || install -m 0644 ferry.toml.sample $(DESTDIR)$(CONFDIR)/ferry.toml

# Removes what `install` put in place, by name: the binary, the units, the man
# pages (the installed binary lists them: the pages it installed), the
# completions and the sample config. Never /etc/ferry/ferry.toml (the admin's
# settings), the state dir (/var/lib/ferry) or any snapshot or replica. Stop and
# disable the services first.
uninstall:
	@installed=$(DESTDIR)$(BINDIR)/ferry; \
	if [ -x $$installed ]; then lister=$$installed; else lister=$(BIN); fi; \
	if [ ! -x $$lister ]; then echo "no ferry binary to list the man pages: build one or set FERRY_BIN"; exit 1; fi; \
	pages=$$(mktemp -d) && FERRY_CONFIG=/dev/null $$lister man $$pages >/dev/null && \
	for page in $$pages/*.1; do rm -f $(DESTDIR)$(MANDIR)/man1/$${page##*/}; done; \
	rm -rf $$pages
	rm -f $(DESTDIR)$(BINDIR)/ferry
	rm -f $(DESTDIR)$(UNITDIR)/ferry-sender.service $(DESTDIR)$(UNITDIR)/ferry-receiver.service
	rm -f $(DESTDIR)$(BASHCOMPDIR)/ferry $(DESTDIR)$(ZSHCOMPDIR)/_ferry $(DESTDIR)$(FISHCOMPDIR)/ferry.fish
	rm -f $(DESTDIR)$(CONFDIR)/ferry.toml.sample
