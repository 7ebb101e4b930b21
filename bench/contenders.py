"""The contenders and how one measured run of each is taken.

Every contender owns a directory of shares on the source pool (`<src>/<name>/`:
`a`, `b`, `inc`, each a CoW snapshot of a golden data set) and a directory on the
target pool, so their snapshots and replicas never meet. A run always includes
taking the snapshot, as ferry and btrbk do it themselves; `reset` deletes what
the run made, keeping the incremental baseline (`keep`), so every repetition
measures the same transfer.
"""

import copy
import itertools
import json
import os
import re
import shlex
import subprocess
import time

from sysenv import (btrfs_cpu, cpu_ticks, delete_subvols_in, drop_caches, nsexec, proc_status, sh,
                    snapshot, subvol_delete, subvols_in, wait_no_children)

# Data sets whose runs time their `btrfs send` and `btrfs receive` (through the
# timed wrapper), so each end's own CPU is known: the full sends. The small
# incrementals go without, because the wrapper's extra exec from a cold cache
# would be a visible part of their tenth of a second.
TIMED_SETS = ("a", "b", "z", "v")


class Bench:
    """What the contenders share: the pools, logs, processes, ssh and the binary."""

    def __init__(self, work, src, dst, ferry, procs, ssh, wrappers, cold=True):
        self.cold = cold
        self.work, self.src, self.dst, self.ferry = work, src, dst, ferry
        self.procs, self.ssh, self.wrappers = procs, ssh, wrappers
        self.tag = ""
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.seq = itertools.count(1)

    def on_pools(self, src, dst, tag):
        """The same bench on another pair of pools (the compressed ones): its
        contenders get state and config of their own, named with `tag`."""
        other = copy.copy(self)
        other.src, other.dst, other.tag = src, dst, tag
        return other

    def log(self, what):
        return open(os.path.join(self.logs, f"{next(self.seq):04d}-{what}.log"), "w")

    def path_with(self, wrapper, base=None):
        """PATH with one of the `btrfs` wrappers first (see sysenv.btrfs_wrappers)."""
        return f"{self.wrappers[wrapper]}:{base or os.environ['PATH']}"


def measure(b, what, argv, ns, net, daemons=(), env=None, cold=None, btrfs_log=None):
    """One timed run of `argv` (in namespace `ns`), cold unless `cold` is False:
    wall time; CPU of the child and everything it waited for (rusage from wait4)
    plus the deltas of the receiving daemons' /proc ticks; the child's max RSS;
    bytes on the wire (and those the sending side's interface sent). With
    `btrfs_log` (the timed wrapper's log), also the CPU of the `btrfs send` and
    `btrfs receive` runs, which count in the sending and receiving figures."""
    if b.cold and cold is not False:
        drop_caches()
    if btrfs_log and os.path.exists(btrfs_log):
        os.unlink(btrfs_log)
    before = {pid: cpu_ticks(pid) for pid in daemons}
    wire0 = net.wire_counters()
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
    wire1 = net.wire_counters()
    wire = sum(wire1) - sum(wire0)
    wire_tx = wire1[0] - wire0[0]
    if p.returncode != 0:
        with open(log.name) as f:
            raise RuntimeError(f"{what}: {' '.join(map(str, argv))} exited {p.returncode}: {f.read()[-3000:]}")
    tx_cpu = ru.ru_utime + ru.ru_stime
    with open(rss_file) as f:
        maxrss = int(f.read().split()[-1]) * 1024
    r = {"wall": wall, "cpu": tx_cpu + rx_cpu, "cpu_tx": tx_cpu, "cpu_rx": rx_cpu,
         "maxrss_tx": maxrss, "wire": wire, "wire_tx": wire_tx}
    if btrfs_log:
        spent = btrfs_cpu(btrfs_log)
        r["cpu_btrfs_send"], r["cpu_btrfs_receive"] = spent["send"], spent["receive"]
    return r


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
        return {"c": "inc", "d": "inc", "v": "vm", "vi": "vm"}.get(ds, ds)

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

    def baseline(self, net, ds="c"):
        """The unmeasured full send the incrementals of `ds` start from; what it leaves is kept."""
        share = self.share(ds)
        self.run(ds, net, measured=False)
        self.keep_src = subvols_in(self.snapdir(share), share)
        self.keep_dst = subvols_in(self.dstdir(share), share)

    def drop_baseline(self, ds="c"):
        """btrbk would otherwise find the baseline (a relative of (a): both are
        snapshots of the golden subvolume) and send (a) incrementally from it."""
        self.keep_src, self.keep_dst = set(), set()
        self.reset(ds)

    def reset(self, ds):
        share = self.share(ds)
        kept = share in ("inc", "vm")
        delete_subvols_in(self.snapdir(share), self.keep_src if kept else (), share)
        delete_subvols_in(self.dstdir(share), self.keep_dst if kept else (), share)

    def send_flags(self, ds):
        """What this contender adds to `btrfs send` for data set `ds`."""
        return []

    def stream_size(self, ds):
        """Bytes of the send stream this contender's last run of `ds` made: its
        newest snapshot sent again (from the kept baseline, if any) with the
        same flags, counted. Outside any timing."""
        share = self.share(ds)
        new = sorted(subvols_in(self.snapdir(share), share) - self.keep_src)
        if not new:
            return None
        argv = ["btrfs", "send", "-q", *self.send_flags(ds)]
        if self.keep_src:
            argv += ["-p", os.path.join(self.snapdir(share), min(self.keep_src))]
        argv.append(os.path.join(self.snapdir(share), new[-1]))
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        total = 0
        while True:
            block = p.stdout.read(1 << 20)
            if not block:
                break
            total += len(block)
        if p.wait() != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}")
        return total

    def run(self, ds, net, measured=True):
        raise NotImplementedError


class Pipe(Contender):
    """`btrfs send | btrfs receive`, locally (raw) or through ssh to the
    namespace's sshd (ssh). The bench takes the snapshot, in the timed command."""

    def __init__(self, b, over_ssh, v2=False):
        self.name = "ssh" if over_ssh else "raw"
        self.over_ssh, self.v2 = over_ssh, v2
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
        flags = " ".join(self.send_flags(ds))
        script = (f"set -o pipefail; btrfs -q subvolume snapshot -r {shlex.quote(os.path.join(self.home, share))} "
                  f"{shlex.quote(snap)} && btrfs send -q {flags} {parent} {shlex.quote(snap)} | {recv}")
        daemons = [net.sshd.pid] if self.over_ssh else []
        env, log = None, None
        if ds in TIMED_SETS and not self.over_ssh:
            log = os.path.join(self.b.logs, "btrfs-times")
            env = dict(os.environ, PATH=self.b.path_with("timed"), BENCH_BTRFS_LOG=log)
        r = measure(self.b, f"{self.name}-{ds}", ["bash", "-c", script], net.tx, net, daemons, env=env, btrfs_log=log)
        return r if measured else None

    def send_flags(self, ds):
        return ["--proto", "2", "--compressed-data"] if self.v2 else []


class Btrbk(Contender):
    """Debian's btrbk, replicating the share over ssh to the namespace's sshd,
    with its defaults or tuned as btrbk.conf(5) suggests for speed."""

    def __init__(self, b, tuned, v2=False):
        self.name = ("btrbk_v2" if v2 else "btrbk") + ("_tuned" if tuned else "" if v2 else "_default")
        self.tuned, self.v2 = tuned, v2
        super().__init__(b)
        self.snaps = os.path.join(self.home, ".snaps")
        os.makedirs(self.snaps, exist_ok=True)
        path = f"{b.ssh.bindir}:{os.environ['PATH']}"
        self.env = dict(os.environ, PATH=b.path_with("v2", path) if v2 else path)

    def send_flags(self, ds):
        return ["--proto", "2", "--compressed-data"] if self.v2 else []

    def snapdir(self, share):
        return self.snaps

    def config(self, net, share=None):
        """btrbk.conf for runs over `net`, naming `share` (default: the shares
        every contender has; a subclass may add its own)."""
        path = self.config_path(net)
        shares = [share] if share else ["a", "b", "inc"]
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
""" + "".join(f"  subvolume {n}\n" for n in shares))
        return path

    def run(self, ds, net, measured=True):
        share = self.share(ds)
        argv = ["btrbk", "-c", self.config(net, share), "run", os.path.join(self.home, share)]
        r = measure(self.b, f"{self.name}-{ds}", argv, net.tx, net, [net.sshd.pid], env=self.env)
        return r if measured else None

    def config_path(self, net):
        return os.path.join(self.b.work, f"{self.name}{self.b.tag}-{net.rx}.conf")


class Ferry(Contender):
    """ferry's real binary: `ferry task run` on the sending appliance, a fresh
    `ferry receiver` per run on the receiving one (so its VmHWM is this run's),
    two state dirs as in the demo. Defaults everywhere (`--compress auto`,
    `--send-compressed auto`)."""

    name = "ferry"

    def __init__(self, b):
        super().__init__(b)
        self.nas1 = os.path.join(b.work, f"nas1{b.tag}")
        self.nas2 = os.path.join(b.work, f"nas2{b.tag}")
        self.cli(self.nas1, "init", "--name", "nas1")
        self.cli(self.nas2, "init", "--name", "nas2")
        self.cli(self.nas2, "pool", "add", "backup", b.dst)
        self.cli(self.nas2, "appliance", "add", "nas1", "--address", "127.0.0.1",
                 "--fingerprint", self.id(self.nas1)["fingerprint"])
        self.cli(self.nas1, "appliance", "add", "nas2", "--address", "127.0.0.1",
                 "--fingerprint", self.id(self.nas2)["fingerprint"])
        self.src_uuid = self.id(self.nas1)["uuid"]
        self.tasks = {}
        self.golden = {}
        self.afters = 0

    def cli(self, state, *args, ns=None):
        return sh(self.b.ferry, "--state-dir", state, "--config", "/dev/null", *args, ns=ns)

    def id(self, state):
        return json.loads(self.cli(state, "id", "--json"))

    def add_task(self, task, path, keep=100):
        # A yearly cron: never due, the bench runs it with `task run`; generous
        # retention (unless `keep` says) so ferry prunes nothing the bench has not
        # deleted itself; skip-unchanged off so (d) measures a real no-change
        # send, as the other contenders make one.
        self.cli(self.nas1, "task", "add", task, "--share", path, "--target", "nas2",
                 "--pool", "backup", "--frequency", "0 0 1 1 *",
                 "--keep-source", str(keep), "--keep-target", str(keep), "--skip-unchanged", "off")

    def add_share(self, ds, golden):
        path = super().add_share(ds, golden)
        share = self.share(ds)
        self.golden[share] = golden
        if share not in self.tasks:
            self.add_task(f"t{share}", path)
            self.tasks[share] = f"t{share}"
        return path

    def snapdir(self, share):
        return os.path.join(self.home, ".ferry-snapshots", share)

    def dstdir(self, share):
        return os.path.join(self.b.dst, ".ferry", self.src_uuid, share)

    def start_receiver(self, net, env=None):
        out = self.b.log("ferry-receiver-out")
        err = self.b.log("ferry-receiver")
        p = self.b.procs.start([self.b.ferry, "--state-dir", self.nas2, "--config", "/dev/null",
                                "receiver", "--listen", net.addr, "--meta-port", "0", "--data-port", "0"],
                               ns=net.rx, stdout=out, stderr=err, env=env)
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
        r = self.run_task(self.tasks[self.share(ds)], ds, net, timed=ds in TIMED_SETS)
        return r if measured else None

    def run_task(self, task, ds, net, timed=False, cold=None, receiver=None):
        """One `task run` of `task` against a fresh receiver, or against
        `receiver` (from `start_receiver`, left running). When `timed`, both
        ends run btrfs through the timed wrapper: each end's own CPU is its
        process tree's less its `btrfs send` or `btrfs receive`."""
        env, log = None, None
        if timed:
            log = os.path.join(self.b.logs, "btrfs-times")
            env = dict(os.environ, PATH=self.b.path_with("timed"), BENCH_BTRFS_LOG=log)
        rx, meta, data = receiver or self.start_receiver(net, env)
        profile = None
        try:
            self.cli(self.nas1, "appliance", "set", "nas2", "--address", net.addr,
                     "--meta-port", meta, "--data-port", data)
            argv = [self.b.ferry, "--state-dir", self.nas1, "--config", "/dev/null", "task", "run", task]
            if os.environ.get("BENCH_PERF"):
                # Profiles of both ends (perf's own CPU then counts too: not for figures).
                out = os.path.join(os.environ["BENCH_PERF"], f"{next(self.b.seq):04d}-{ds}")
                argv = ["perf", "record", "-q", "-F", "997", "-g", "-o", out + "-send.data", "--"] + argv
                profile = subprocess.Popen(["perf", "record", "-q", "-F", "997", "-g", "-p", str(rx.pid),
                                            "-o", out + "-receive.data"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            r = measure(self.b, f"ferry-{ds}", argv, net.tx, net, [rx.pid], env=env, cold=cold, btrfs_log=log)
            r["rss_rx"] = proc_status(rx.pid, "VmHWM")
        finally:
            if profile:
                profile.send_signal(2)
                profile.wait()
            if receiver is None:
                self.b.procs.stop(rx)
        row = json.loads(self.cli(self.nas1, "history", "send", "--task", task, "--limit", "1", "--json"))[0]
        if row["status"] != "succeeded":
            raise RuntimeError(f"ferry run of {task} is {row['status']}: {row['error']}")
        r.update(ferry_stream_bytes=row["stream_bytes"], ferry_wire_bytes=row["wire_bytes"], kind=row["kind"],
                 stream_own=row["stream_bytes"], stream_version=row.get("stream_version"))
        r["peak_rss"] = max(r["maxrss_tx"], r["rss_rx"])
        if timed:
            r["cpu_send_end"] = r["cpu_tx"] - r["cpu_btrfs_send"]
            r["cpu_recv_end"] = r["cpu_rx"] - r["cpu_btrfs_receive"]
        return r

    def after_large(self, net):
        """(d) right after a large run, as a daemon sees it: a task keeping one
        snapshot on each side, and one receiver for its runs. A full send of
        (b) and a no-change run (unmeasured), then the share's content replaced
        by (a)'s (reflinked: instant) and sent as a 2 GiB incremental, which
        prunes the no-change replica after `received` (a delete and its
        commit); the measured no-change run follows at once, caches warm
        and nothing synced in between, so that pruning, and anything else the
        large run left to do, falls on it if the run waits for it.
        Everything it made goes after."""
        self.afters += 1
        share = f"after{self.afters}"
        path = os.path.join(self.home, share)
        snapshot(self.golden["b"], path)
        task = f"t{share}"
        self.add_task(task, path, keep=1)
        try:
            first = self.run_task(task, "d-after", net)
            if first["kind"] != "full":
                raise RuntimeError(f"the first run of {task} was {first['kind']}, not full")
            # A second replica, which the large run prunes after `received`
            # (retention's grid keeps the first one of the hour).
            self.run_task(task, "d-after", net)
            for name in os.listdir(path):
                sh("rm", "-rf", os.path.join(path, name))
            for name in os.listdir(self.golden["inc"]):
                sh("cp", "-a", "--reflink=always", os.path.join(self.golden["inc"], name), path)
            receiver = self.start_receiver(net)
            try:
                large = self.run_task(task, "d-after", net, receiver=receiver)
                size = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
                if large["kind"] != "incremental" or large["ferry_stream_bytes"] < size // 2:
                    raise RuntimeError(f"the large run of {task} sent {large['ferry_stream_bytes']} B {large['kind']}")
                r = self.run_task(task, "d-after", net, cold=False, receiver=receiver)
            finally:
                self.b.procs.stop(receiver[0])
            r["after_bytes"] = large["ferry_stream_bytes"]
            return r
        finally:
            self.cli(self.nas1, "task", "delete", task, "--yes")
            delete_subvols_in(self.snapdir(share), (), share)
            delete_subvols_in(self.dstdir(share), (), share)
            subvol_delete(path)
