"""The machine-level pieces the bench builds and must take down again: loop-backed
btrfs pools, network namespaces, an sshd of its own, child processes; plus the
measuring primitives (cold caches, /proc CPU ticks, interface byte counters).

Everything that is created registers an undo step on a `Cleanup` stack first, so
a failure or Ctrl-C half-way through still unwinds what exists, newest first.
"""

import json
import os
import shutil
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(*cmd, ns=None, check=True, capture=True, timeout=None):
    """Runs a command (in netns `ns` when given) and returns its stdout."""
    argv = nsexec(ns) + [str(c) for c in cmd]
    p = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {(p.stderr or '').strip()[-2000:]}")
    return p.stdout if capture else ""


def nsexec(ns):
    # `ip netns exec` execs the command after setns, so the child's pid and
    # rusage are the command's own, not a wrapper's.
    return ["ip", "netns", "exec", ns] if ns else []


class Cleanup:
    """A stack of undo steps; each runs once, errors are reported and skipped so
    one stuck mount does not leave the namespaces behind."""

    def __init__(self):
        self.steps = []

    def push(self, what, fn):
        self.steps.append((what, fn))

    def run(self):
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except Exception as e:  # keep unwinding: the rest still needs undoing
                print(f"bench: cleanup of {what} failed: {e}", flush=True)


def install_signal_exit():
    # SIGTERM (and SIGHUP) unwind through `finally` like Ctrl-C does.
    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


class Procs:
    """Long-running children (daemons). Stopped by their own pid, never by name."""

    def __init__(self, cleanup):
        self.live = []
        cleanup.push("child processes", self.stop_all)

    def start(self, argv, ns=None, stdout=None, stderr=None, env=None):
        p = subprocess.Popen(nsexec(ns) + [str(a) for a in argv], stdout=stdout, stderr=stderr,
                             stdin=subprocess.DEVNULL, env=env)
        self.live.append(p)
        return p

    def stop(self, p, timeout=15):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p)


def drop_caches():
    """Everyone starts cold: dirty pages written, page cache and slabs dropped."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cpu_ticks(pid):
    """utime+stime+cutime+cstime of a live process, in seconds. cutime/cstime
    grow when the daemon reaps a child, so a daemon's delta around a run covers
    the btrfs receive (and sshd's session processes) it forked for that run."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14 -> index 11.
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def proc_status(pid, key):
    """A kB figure from /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def wait_no_children(pid, timeout=10.0):
    """Waits until a daemon has reaped every child, so its cutime is final.
    sshd's per-connection process exits a moment after the client's does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = ""
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += f.read().strip()
            except FileNotFoundError:
                pass
        if not kids:
            return
        time.sleep(0.02)


# ---------------------------------------------------------------- pools

def make_pool(cleanup, work, name, size, options=None):
    """A sparse image, mkfs.btrfs, mount -o loop (autoclear detaches the loop
    device at umount), with mount `options` (e.g. `compress=zstd:3`) when given;
    the undo also catches a loop device left by a failed mount."""
    img = os.path.join(work, f"{name}.img")
    mnt = os.path.join(work, name)
    with open(img, "wb") as f:
        f.truncate(size)

    def undo():
        if os.path.ismount(mnt):
            if subprocess.run(["umount", mnt]).returncode != 0:
                subprocess.run(["umount", "-l", mnt])
        out = subprocess.run(["losetup", "-j", img, "-O", "NAME", "--noheadings"],
                             capture_output=True, text=True).stdout
        for dev in out.split():
            subprocess.run(["losetup", "-d", dev])

    cleanup.push(f"pool {name}", undo)
    sh("mkfs.btrfs", "-q", img)
    os.makedirs(mnt)
    sh("mount", "-o", "loop" + (f",{options}" if options else ""), img, mnt)
    return mnt


def subvol_create(path):
    sh("btrfs", "-q", "subvolume", "create", path)


def snapshot(src, dst, readonly=False):
    sh("btrfs", "-q", "subvolume", "snapshot", *(["-r"] if readonly else []), src, dst)


def subvol_delete(*paths):
    if paths:
        sh("btrfs", "-q", "subvolume", "delete", *paths)


def is_subvol(path):
    try:
        return os.stat(path).st_ino == 256 and not os.path.islink(path)
    except FileNotFoundError:
        return False


def delete_subvols_in(directory, keep=(), prefix=""):
    """Deletes the subvolumes directly in `directory` (not in `keep`): what a
    run received or snapshotted, so the next repetition starts from the same state."""
    if not os.path.isdir(directory):
        return
    doomed = [os.path.join(directory, n) for n in sorted(os.listdir(directory))
              if n.startswith(prefix) and n not in keep and is_subvol(os.path.join(directory, n))]
    subvol_delete(*doomed)


def subvols_in(directory, prefix=""):
    if not os.path.isdir(directory):
        return set()
    return {n for n in os.listdir(directory)
            if n.startswith(prefix) and is_subvol(os.path.join(directory, n))}


# ---------------------------------------------------------------- network

class Net:
    """Where a transfer runs. `tx` is the sending side's namespace, `rx` the
    receiving side's (the same one for loopback), `addr` the receiver's address.
    Even the loopback case runs in a namespace of its own, so its `lo` counters
    see only the bench's traffic, not other work on this machine's 127.0.0.1."""

    def __init__(self, label, tx, rx, addr, devs):
        self.label, self.tx, self.rx, self.addr = label, tx, rx, addr
        self.devs = devs  # [(ns, dev)] whose tx_bytes together are the wire bytes
        self.rate = None  # tc's rate text of a shaped link
        self.sshd_port = None
        self.sshd = None

    def wire_counter(self):
        """Bytes sent on the namespace interfaces: both directions, with TCP/IP
        headers (lo counts each packet once; on the veth pair each end's tx)."""
        return sum(self.wire_counters())

    def wire_counters(self):
        """Each interface's tx bytes, in `devs` order (the sending side's first)."""
        out = []
        for ns, dev in self.devs:
            info = json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev))
            out.append(info[0]["stats64"]["tx"]["bytes"])
        return out


def add_netns(cleanup, name):
    cleanup.push(f"netns {name}", lambda: subprocess.run(["ip", "netns", "del", name]))
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def make_loopback(cleanup, prefix):
    ns = f"{prefix}lo"
    add_netns(cleanup, ns)
    return Net("loopback", ns, ns, "127.0.0.1", [(ns, "lo")])


def rate_bits(rate):
    """tc's rate text (`100mbit`, `1gbit`, `500kbit`) in bits per second."""
    units = {"gbit": 10**9, "mbit": 10**6, "kbit": 10**3, "bit": 1}
    for unit, factor in units.items():
        if rate.endswith(unit):
            return float(rate[:-len(unit)]) * factor
    raise ValueError(f"rate {rate!r}: use tc's units, e.g. 100mbit or 1gbit")


def tbf_burst(rate):
    """tbf's bucket: 32 kbit, as the 100 Mbit figures were always taken with;
    a faster link needs at least a timer tick's worth of bytes (HZ >= 250),
    or tbf caps it below its rate."""
    bits = rate_bits(rate)
    if bits <= 100 * 10**6:
        return "32kbit"
    return f"{int(bits / 8 / 250)}b"


def make_link(cleanup, prefix, rate, subnet="10.77.0"):
    """Two namespaces joined by a veth pair, shaped with tbf on both ends.
    Addresses are private to these namespaces; deleting a namespace deletes its veth end."""
    tx, rx = f"{prefix}tx", f"{prefix}rx"
    add_netns(cleanup, tx)
    add_netns(cleanup, rx)
    a, b = f"{prefix}a", f"{prefix}b"
    # Created inside tx, so nothing ever appears in the host's namespace.
    sh("ip", "-n", tx, "link", "add", a, "type", "veth", "peer", "name", b, "netns", rx)
    for ns, dev, ip in ((tx, a, f"{subnet}.1/24"), (rx, b, f"{subnet}.2/24")):
        sh("ip", "-n", ns, "addr", "add", ip, "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
           "rate", rate, "burst", tbf_burst(rate), "latency", "400ms")
    net = Net(f"{rate} link", tx, rx, f"{subnet}.2", [(tx, a), (rx, b)])
    net.rate = rate
    return net


# ---------------------------------------------------------------- ssh

class Ssh:
    """A client key made for this run, and a `ssh` wrapper first on PATH so btrbk
    (which runs plain `ssh`) skips host key checks the same way the pipe does."""

    def __init__(self, work):
        self.dir = os.path.join(work, "ssh")
        os.makedirs(self.dir, mode=0o700)
        self.key = os.path.join(self.dir, "id_ed25519")
        self.hostkey = os.path.join(self.dir, "host_ed25519")
        for k in (self.key, self.hostkey):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k)
        shutil.copy(self.key + ".pub", os.path.join(self.dir, "authorized_keys"))
        self.opts = ["-i", self.key, "-o", "StrictHostKeyChecking=no", "-o",
                     "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
        self.bindir = os.path.join(self.dir, "bin")
        os.makedirs(self.bindir)
        wrapper = os.path.join(self.bindir, "ssh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec /usr/bin/ssh -o StrictHostKeyChecking=no "
                    "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \"$@\"\n")
        os.chmod(wrapper, 0o755)

    def start_sshd(self, procs, net, log):
        """An sshd of the bench's own in the receiving namespace: own config,
        host key and authorized key; the system's sshd and its config are untouched."""
        port = 2222
        conf = os.path.join(self.dir, f"sshd_{net.rx}.conf")
        with open(conf, "w") as f:
            f.write(f"""Port {port}
ListenAddress {net.addr}
HostKey {self.hostkey}
PidFile none
AuthorizedKeysFile {self.dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
AcceptEnv none
""")
        # sshd needs its privilege-separation directory; systemd makes it at boot,
        # a machine that never started sshd lacks it.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        p = procs.start(["/usr/sbin/sshd", "-D", "-e", "-f", conf], ns=net.rx,
                        stdout=log, stderr=log)
        net.sshd, net.sshd_port = p, port
        for _ in range(100):
            r = subprocess.run(nsexec(net.tx) + ["ssh", *self.opts, "-p", str(port),
                                                 f"root@{net.addr}", "true"], capture_output=True)
            if r.returncode == 0:
                return
            if p.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"sshd in {net.rx} did not accept the bench's key; see {log.name}")

    def argv(self, net):
        return ["ssh", *self.opts, "-p", str(net.sshd_port), f"root@{net.addr}"]


# ---------------------------------------------------------------- btrfs wrappers

def btrfs_wrappers(work):
    """Directories holding a `btrfs` to put first on a contender's PATH:
    `timed` runs the real one and, for `send` and `receive`, appends
    "<verb> <user s> <system s>" to $BENCH_BTRFS_LOG when that is set, so the
    bench can tell btrfs's own CPU from the CPU of the tool driving it;
    `v2` adds `--proto 2 --compressed-data` to every `btrfs send`, which is what
    btrbk 0.33's `send_protocol 2` and `send_compressed_data yes` do, for the
    btrbk 0.32 that Debian 12 ships (it has neither option)."""
    real = shutil.which("btrfs")
    if not real:
        raise RuntimeError("no btrfs in PATH")
    scripts = {
        "timed": f"""#!/bin/sh
case "$1" in
send|receive)
    if [ -n "$BENCH_BTRFS_LOG" ]; then
        exec /usr/bin/time -a -o "$BENCH_BTRFS_LOG" -f "$1 %U %S" {real} "$@"
    fi;;
esac
exec {real} "$@"
""",
        "v2": f"""#!/bin/sh
if [ "$1" = send ]; then
    shift
    exec {real} send --proto 2 --compressed-data "$@"
fi
exec {real} "$@"
""",
    }
    dirs = {}
    for name, text in scripts.items():
        d = os.path.join(work, f"btrfs-{name}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "btrfs")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        dirs[name] = d
    return dirs


def btrfs_cpu(log):
    """CPU seconds of the `btrfs send` and `btrfs receive` runs a timed
    wrapper logged to `log`: {"send": s, "receive": s} (0 for none)."""
    out = {"send": 0.0, "receive": 0.0}
    if not os.path.exists(log):
        return out
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] in out:
                out[parts[0]] += float(parts[1]) + float(parts[2])
    return out
