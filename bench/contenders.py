"""The contenders and how one measured run of each is taken.

Every contender owns a directory of shares on the source pool (`<src>/<name>/`:
`a`, `b`, `inc`, each a CoW snapshot of a golden data set) and a directory on the
target pool, so their snapshots and replicas never meet. A run always includes
taking the snapshot, as ferry and btrbk do it themselves; `reset` deletes what
the run made, keeping the incremental baseline (`keep`), so every repetition
measures the same transfer.
"""

import json
import os
import re
import shlex
import subprocess
import time

from sysenv import (cpu_ticks, delete_subvols_in, drop_caches, nsexec, proc_status, sh,
                    snapshot, subvols_in, wait_no_children)


class Bench:
    """What the contenders share: the pools, logs, processes, ssh and the binary."""

    def __init__(self, work, src, dst, ferry, procs, ssh, cold=True):
        self.cold = cold
        self.work, self.src, self.dst, self.ferry = work, src, dst, ferry
        self.procs, self.ssh = procs, ssh
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.seq = 0

    def log(self, what):
        self.seq += 1
        return open(os.path.join(self.logs, f"{self.seq:04d}-{what}.log"), "w")


def measure(b, what, argv, ns, net, daemons=(), env=None):
    """One cold, timed run of `argv` (in namespace `ns`): wall time; CPU of the
    child and everything it waited for (rusage from wait4) plus the deltas of the
    receiving daemons' /proc ticks; the child's max RSS; bytes on the wire."""
    if b.cold:
        drop_caches()
    before = {pid: cpu_ticks(pid) for pid in daemons}
    wire0 = net.wire_counter()
    # GNU time reports the command's max RSS: wait4's own figure would be at least
    # this Python's, which the child's pre-exec memory carries over.
    rss_file = os.path.join(b.logs, "maxrss")
    argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + list(argv)
    with b.log(what) as log:
        t0 = time.monotonic()
        p = subprocess.Popen(nsexec(ns) + [str(a) for a in argv], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, env=env)
        b.procs.live.append(p)  # so an interrupted bench stops it too
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        b.procs.live.remove(p)
        p.returncode = os.waitstatus_to_exitcode(status)
    for pid in daemons:
        wait_no_children(pid)
    rx_cpu = sum(cpu_ticks(pid) - before[pid] for pid in daemons)
    wire = net.wire_counter() - wire0
    if p.returncode != 0:
        with open(log.name) as f:
            raise RuntimeError(f"{what}: {' '.join(map(str, argv))} exited {p.returncode}: {f.read()[-3000:]}")
    tx_cpu = ru.ru_utime + ru.ru_stime
    with open(rss_file) as f:
        maxrss = int(f.read().split()[-1]) * 1024
    return {"wall": wall, "cpu": tx_cpu + rx_cpu, "cpu_tx": tx_cpu, "cpu_rx": rx_cpu,
            "maxrss_tx": maxrss, "wire": wire}


class Contender:
    name = "?"

    def __init__(self, b):
        self.b = b
        self.home = os.path.join(b.src, self.name)
        self.target = os.path.join(b.dst, self.name)
        os.makedirs(self.home, exist_ok=True)
        os.makedirs(self.target, exist_ok=True)
        self.keep_src, self.keep_dst = set(), set()

    def share(self, ds):
        return "inc" if ds in ("c", "d") else ds

    def add_share(self, ds, golden):
        path = os.path.join(self.home, self.share(ds))
        if not os.path.exists(path):
            snapshot(golden, path)
        return path

    # Where this contender's snapshots and replicas of a share live.
    def snapdir(self, share):
        raise NotImplementedError

    def dstdir(self, share):
        return self.target

    def baseline(self, net):
        """The unmeasured full send the incrementals start from; what it leaves is kept."""
        self.run("c", net, measured=False)
        self.keep_src = subvols_in(self.snapdir("inc"), "inc")
        self.keep_dst = subvols_in(self.dstdir("inc"), "inc")

    def drop_baseline(self):
        """btrbk would otherwise find the baseline (a relative of (a): both are
        snapshots of the golden subvolume) and send (a) incrementally from it."""
        self.keep_src, self.keep_dst = set(), set()
        self.reset("c")

    def reset(self, ds):
        share = self.share(ds)
        delete_subvols_in(self.snapdir(share), self.keep_src if share == "inc" else (), share)
        delete_subvols_in(self.dstdir(share), self.keep_dst if share == "inc" else (), share)

    def run(self, ds, net, measured=True):
        raise NotImplementedError


class Pipe(Contender):
    """`btrfs send | btrfs receive`, locally (raw) or through ssh to the
    namespace's sshd (ssh). The bench takes the snapshot, in the timed command."""

    def __init__(self, b, over_ssh):
        self.name = "ssh" if over_ssh else "raw"
        self.over_ssh = over_ssh
        super().__init__(b)
        self.snaps = os.path.join(self.home, ".snaps")
        os.makedirs(self.snaps, exist_ok=True)
        self.n = 0

    def snapdir(self, share):
        return self.snaps

    def run(self, ds, net, measured=True):
        share = self.share(ds)
        self.n += 1
        snap = os.path.join(self.snaps, f"{share}.{self.n}")
        parent = ""
        if share == "inc" and self.keep_src:
            parent = "-p " + shlex.quote(os.path.join(self.snaps, min(self.keep_src)))
        recv = f"btrfs receive -q {shlex.quote(self.target)}"
        if self.over_ssh:
            recv = " ".join(map(shlex.quote, self.b.ssh.argv(net))) + " " + shlex.quote(recv)
        script = (f"set -o pipefail; btrfs -q subvolume snapshot -r {shlex.quote(os.path.join(self.home, share))} "
                  f"{shlex.quote(snap)} && btrfs send -q {parent} {shlex.quote(snap)} | {recv}")
        daemons = [net.sshd.pid] if self.over_ssh else []
        r = measure(self.b, f"{self.name}-{ds}", ["bash", "-c", script], net.tx, net, daemons)
        return r if measured else None


class Btrbk(Contender):
    """Debian's btrbk, replicating the share over ssh to the namespace's sshd,
    with its defaults or tuned as btrbk.conf(5) suggests for speed."""

    def __init__(self, b, tuned):
        self.name = "btrbk_tuned" if tuned else "btrbk_default"
        self.tuned = tuned
        super().__init__(b)
        self.snaps = os.path.join(self.home, ".snaps")
        os.makedirs(self.snaps, exist_ok=True)
        self.env = dict(os.environ, PATH=f"{b.ssh.bindir}:{os.environ['PATH']}")

    def snapdir(self, share):
        return self.snaps

    def config(self, net):
        path = os.path.join(self.b.work, f"{self.name}-{net.rx}.conf")
        tuning = "stream_compress zstd\nstream_buffer 256m\n" if self.tuned else ""
        with open(path, "w") as f:
            # Retention off (everything kept): the bench deletes what a run made.
            f.write(f"""timestamp_format long
snapshot_preserve_min all
target_preserve_min all
backend btrfs-progs
ssh_identity {self.b.ssh.key}
ssh_user root
{tuning}
volume {self.home}
  snapshot_dir .snaps
  target ssh://{net.addr}:{net.sshd_port}{self.target}
  subvolume a
  subvolume b
  subvolume inc
""")
        return path

    def run(self, ds, net, measured=True):
        share = self.share(ds)
        argv = ["btrbk", "-c", self.config(net), "run", os.path.join(self.home, share)]
        r = measure(self.b, f"{self.name}-{ds}", argv, net.tx, net, [net.sshd.pid], env=self.env)
        return r if measured else None


class Ferry(Contender):
    """ferry's real binary: `ferry task run` on the sending appliance, a fresh
    `ferry receiver` per run on the receiving one (so its VmHWM is this run's),
    two state dirs as in the demo. Defaults everywhere (zstd level 3)."""

    name = "ferry"

    def __init__(self, b):
        super().__init__(b)
        self.nas1 = os.path.join(b.work, "nas1")
        self.nas2 = os.path.join(b.work, "nas2")
        self.cli(self.nas1, "init", "--name", "nas1")
        self.cli(self.nas2, "init", "--name", "nas2")
        self.cli(self.nas2, "pool", "add", "backup", b.dst)
        self.cli(self.nas2, "appliance", "add", "nas1", "--address", "127.0.0.1",
                 "--fingerprint", self.id(self.nas1)["fingerprint"])
        self.cli(self.nas1, "appliance", "add", "nas2", "--address", "127.0.0.1",
                 "--fingerprint", self.id(self.nas2)["fingerprint"])
        self.src_uuid = self.id(self.nas1)["uuid"]
        self.tasks = {}

    def cli(self, state, *args, ns=None):
        return sh(self.b.ferry, "--state-dir", state, "--config", "/dev/null", *args, ns=ns)

    def id(self, state):
        return json.loads(self.cli(state, "id", "--json"))

    def add_share(self, ds, golden):
        path = super().add_share(ds, golden)
        share = self.share(ds)
        if share not in self.tasks:
            # A yearly cron: never due, the bench runs it with `task run`; generous
            # retention so ferry prunes nothing the bench has not deleted itself;
            # skip-unchanged off so (d) measures a real no-change send, as the
            # other contenders make one.
            self.cli(self.nas1, "task", "add", f"t{share}", "--share", path, "--target", "nas2",
                     "--pool", "backup", "--frequency", "0 0 1 1 *",
                     "--keep-source", "100", "--keep-target", "100", "--skip-unchanged", "off")
            self.tasks[share] = f"t{share}"
        return path

    def snapdir(self, share):
        return os.path.join(self.home, ".ferry-snapshots", share)

    def dstdir(self, share):
        return os.path.join(self.b.dst, ".ferry", self.src_uuid, share)

    def start_receiver(self, net):
        out = self.b.log("ferry-receiver-out")
        err = self.b.log("ferry-receiver")
        p = self.b.procs.start([self.b.ferry, "--state-dir", self.nas2, "--config", "/dev/null",
                                "receiver", "--listen", net.addr, "--meta-port", "0", "--data-port", "0"],
                               ns=net.rx, stdout=out, stderr=err)
        for _ in range(200):
            with open(out.name) as f:
                m = re.search(r"meta \S+:(\d+), data \S+:(\d+)", f.read())
            if m:
                return p, m.group(1), m.group(2)
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"ferry receiver did not start; see {err.name}")

    def run(self, ds, net, measured=True):
        share = self.share(ds)
        rx, meta, data = self.start_receiver(net)
        try:
            self.cli(self.nas1, "appliance", "set", "nas2", "--address", net.addr,
                     "--meta-port", meta, "--data-port", data)
            argv = [self.b.ferry, "--state-dir", self.nas1, "--config", "/dev/null", "task", "run", self.tasks[share]]
            r = measure(self.b, f"ferry-{ds}", argv, net.tx, net, [rx.pid])
            r["rss_rx"] = proc_status(rx.pid, "VmHWM")
        finally:
            self.b.procs.stop(rx)
        row = json.loads(self.cli(self.nas1, "history", "send", "--task", self.tasks[share],
                                  "--limit", "1", "--json"))[0]
        if row["status"] != "succeeded":
            raise RuntimeError(f"ferry run of {share} is {row['status']}: {row['error']}")
        r.update(ferry_stream_bytes=row["stream_bytes"], ferry_wire_bytes=row["wire_bytes"], kind=row["kind"])
        r["peak_rss"] = max(r["maxrss_tx"], r["rss_rx"])
        return r if measured else None
