"""The resume figure (`--only link-resume`): a 1 GiB incremental on the shaped
link, the link cut at 50% by a blackhole longer than the keepalive, then
restored; the run finishes by itself. The figure is the wire bytes of the whole
replication (the veth pair's counters, both directions, headers included) over
the send stream's bytes; the goal is at most 1.10. btrbk, which cannot resume,
gets the same cut and starts over in its next run.

The blackhole is an nftables drop rule on the ingress hook of both veth ends
(this kernel has no sch_netem); tables and rules live in the bench's own
namespaces and go with them.
"""

import json
import os
import subprocess
import time

import data
from contenders import Btrbk
from sysenv import nsexec, sh, subvol_create

MiB, GiB = 1 << 20, 1 << 30
GOAL = 1.10
TABLE = "ferrybench"
# ferry's shipped keepalive gives a silent peer up after three 10 s intervals;
# the quick mode shortens it (through a config file) so it stays quick.
FULL = {"keepalive": 10, "blackhole": 45, "size": 1 * GiB}
QUICK = {"keepalive": 1, "blackhole": 6, "size": 24 * MiB}


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Cut:
    """An ingress filter on each end of the link that can drop everything."""

    def __init__(self, cleanup, net):
        self.net = net
        for ns, dev in net.devs:
            cleanup.push(f"nft table in {ns}", lambda ns=ns: subprocess.run(
                nsexec(ns) + ["nft", "delete", "table", "netdev", TABLE], capture_output=True))
            table = (f"table netdev {TABLE} {{\n  chain ingress {{\n    type filter hook ingress "
                     f"device \"{dev}\" priority 0; policy accept;\n  }}\n}}\n")
            p = subprocess.run(nsexec(ns) + ["nft", "-f", "-"], input=table, text=True, capture_output=True)
            if p.returncode != 0:
                raise RuntimeError(f"nft in {ns}: {p.stderr.strip()} (the kernel needs nf_tables' netdev family)")

    def blackhole(self):
        for ns, _ in self.net.devs:
            sh("nft", "add", "rule", "netdev", TABLE, "ingress", "counter", "drop", ns=ns)

    def heal(self):
        """Returns the packets the blackhole dropped."""
        dropped = 0
        for ns, _ in self.net.devs:
            words = sh("nft", "list", "table", "netdev", TABLE, ns=ns).split()
            dropped += sum(int(b) for a, b in zip(words, words[1:]) if a == "packets")
            sh("nft", "flush", "chain", "netdev", TABLE, "ingress", ns=ns)
        return dropped


def run_cut(b, what, argv, net, cut, at_bytes, hold, env=None):
    """Runs `argv` in the sending namespace; once `at_bytes` crossed the link,
    blackholes it for `hold` seconds. Returns (exit code, wire bytes, seconds,
    packets dropped, whether the cut happened)."""
    wire0 = net.wire_counter()
    dropped, cut_done = 0, False
    with b.log(what) as log:
        t0 = time.monotonic()
        p = subprocess.Popen(nsexec(net.tx) + [str(a) for a in argv], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, env=env)
        b.procs.live.append(p)  # so an interrupted bench stops it too
        try:
            while p.poll() is None:
                if not cut_done and net.wire_counter() - wire0 >= at_bytes:
                    cut.blackhole()
                    cut_done = True
                    say(f"{what}: link cut after {(net.wire_counter() - wire0) / MiB:.0f} MiB, for {hold}s")
                    end = time.monotonic() + hold
                    while time.monotonic() < end and p.poll() is None:
                        time.sleep(0.2)
                    # A process that gave up during the cut still had the cut.
                    dropped = cut.heal()
                    say(f"{what}: link restored ({dropped} packets dropped)")
                time.sleep(0.05)
        finally:
            if p.poll() is None:  # interrupted: stop it
                p.kill()
            p.wait()
            b.procs.live.remove(p)
    return p.returncode, net.wire_counter() - wire0, time.monotonic() - t0, dropped, cut_done


def fill(share, size):
    """`size` new incompressible bytes in the share: what the incremental sends."""
    d = os.path.join(share, "new")
    os.makedirs(d, exist_ok=True)
    data.write_incompressible(d, size)


def ferry_figure(b, ferry, lo, link, cut, mode, config):
    """ferry: a baseline over loopback, then the 1 GiB incremental on the link, cut."""
    share = os.path.join(ferry.home, "r")
    subvol_create(share)
    fill(share, 1 * MiB)
    ferry.add_share("r", None)
    task = ferry.tasks["r"]
    say("link-resume: ferry's baseline (full send over loopback, unmeasured)")
    ferry.run("r", lo, measured=False)
    fill(share, mode["size"])
    rx, meta, data_port = ferry.start_receiver(link)
    try:
        ferry.cli(ferry.nas1, "appliance", "set", "nas2", "--address", link.addr,
                  "--meta-port", meta, "--data-port", data_port)
        argv = [b.ferry, "--state-dir", ferry.nas1, "--config", config, "task", "run", task]
        code, wire, secs, dropped, was_cut = run_cut(b, "link-resume ferry", argv, link, cut,
                                                     mode["size"] // 2, mode["blackhole"])
    finally:
        b.procs.stop(rx)
    send = json.loads(ferry.cli(ferry.nas1, "history", "send", "--task", task, "--limit", "1", "--json"))[0]
    recvs = json.loads(ferry.cli(ferry.nas2, "history", "receive", "--limit", "5", "--json"))
    done = next((r for r in recvs if r["snapshot"] == send["snapshot"] and r["status"] == "succeeded"), None)
    if code != 0 or send["status"] != "succeeded" or done is None:
        raise RuntimeError(f"ferry's cut run is {send['status']}: {send['error']}; see the logs")
    stream = done["resumed_from"] + done["stream_bytes"]
    attempts = [r for r in recvs if r["snapshot"] == send["snapshot"]]
    return {"contender": "ferry", "stream_bytes": stream, "wire": wire, "ratio": wire / stream,
            "history_wire": send["wire_bytes"], "history_ratio": send["wire_bytes"] / stream,
            "resumed_from": done["resumed_from"], "receive_attempts": len(attempts), "runs": 1,
            "wall": secs, "cut": was_cut, "dropped": dropped}


class ResumeBtrbk(Btrbk):
    """Debian's btrbk as the bench's `btrbk_default`, with the share `r` and an
    ssh that gives a silent server up as ferry's keepalive does (three missed
    ServerAlive probes), so the cut breaks its transfer too."""

    def __init__(self, b, keepalive):
        super().__init__(b, tuned=False)
        bindir = os.path.join(b.work, "ssh-resume", "bin")
        os.makedirs(bindir, exist_ok=True)
        wrapper = os.path.join(bindir, "ssh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec /usr/bin/ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                    f"-o LogLevel=ERROR -o ServerAliveInterval={keepalive} -o ServerAliveCountMax=3 \"$@\"\n")
        os.chmod(wrapper, 0o755)
        self.env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")

    def config(self, net):
        path = super().config(net)
        with open(path, "a") as f:
            f.write("  subvolume r\n")
        return path


def btrbk_figure(b, lo, link, cut, mode, stream):
    """btrbk: the same baseline and cut; it fails, and runs again (as its next
    scheduled run would) until it succeeds, at most three times."""
    bk = ResumeBtrbk(b, mode["keepalive"])
    share = os.path.join(bk.home, "r")
    subvol_create(share)
    fill(share, 1 * MiB)
    say("link-resume: btrbk's baseline (over loopback, unmeasured)")
    subprocess.run(nsexec(lo.tx) + ["btrbk", "-c", bk.config(lo), "run", share], env=bk.env,
                   check=True, capture_output=True)
    fill(share, mode["size"])
    argv = ["btrbk", "-c", bk.config(link), "run", share]
    wire = secs = dropped = 0
    codes = []
    for attempt in range(3):
        code, w, s, d, _ = run_cut(b, f"link-resume btrbk run {attempt + 1}", argv, link, cut,
                                   mode["size"] // 2 if attempt == 0 else float("inf"), mode["blackhole"],
                                   env=bk.env)
        wire, secs, dropped = wire + w, secs + s, dropped + d
        codes.append(code)
        if code == 0:
            break
    return {"contender": "btrbk_default", "stream_bytes": stream, "wire": wire,
            "ratio": wire / stream if stream else None, "runs": len(codes), "exit_codes": codes,
            "succeeded": codes[-1] == 0, "wall": secs, "dropped": dropped}


def figure(args, b, cleanup, ferry, lo, link):
    """The figure's rows (ferry's, and btrbk's when it runs) and its goal."""
    mode = QUICK if args.quick else FULL
    config = os.path.join(b.work, "resume.toml")
    with open(config, "w") as f:
        # The shipped defaults, but for the keepalive in quick mode.
        if mode["keepalive"] != FULL["keepalive"]:
            k = mode["keepalive"]
            f.write(f"[receiver]\nkeepalive = \"{k}s\"\ndata_timeout = \"{3 * k}s\"\n"
                    f"[sender]\nkeepalive = \"{k}s\"\n")
    cut = Cut(cleanup, link)
    rows = []
    if not args.contenders or "ferry" in args.contenders:
        rows.append(ferry_figure(b, ferry, lo, link, cut, mode, config))
    stream = rows[0]["stream_bytes"] if rows else mode["size"]
    if not args.contenders or "btrbk_default" in args.contenders:
        try:
            rows.append(btrbk_figure(b, lo, link, cut, mode, stream))
        except (RuntimeError, subprocess.CalledProcessError) as e:
            rows.append({"contender": "btrbk_default", "error": str(e)[-1000:]})
    return {"link": link.label, "size": mode["size"], "blackhole_secs": mode["blackhole"],
            "keepalive_secs": mode["keepalive"], "rows": rows}


def goal(fig):
    """ferry's wire over stream on the cut link, PASS at <= 1.10; SKIP when
    the figure (or ferry in it) was not run."""
    name = f"link-resume: ferry wire/stream of an incremental cut at 50% by a blackhole <= {GOAL}"
    if not fig:
        return {"goal": name, "measured": None, "limit": None, "pass": None,
                "error": "not measured in this run (needs --only link-resume)"}
    f = next((r for r in fig["rows"] if r["contender"] == "ferry"), None)
    if f is None:
        return {"goal": name, "measured": None, "limit": None, "pass": None,
                "error": "not measured in this run (needs --contenders ferry)"}
    return {"goal": name, "measured": f["ratio"], "limit": GOAL, "pass": f["ratio"] <= GOAL}


def lines(fig):
    out = [f"link-resume: {fig['size'] / MiB:.0f} MiB incremental on the {fig['link']}, blackhole of "
           f"{fig['blackhole_secs']}s at 50% (keepalive {fig['keepalive_secs']}s)"]
    for r in fig["rows"]:
        if "error" in r:
            out.append(f"  {r['contender']}: failed: {r['error'][-300:]}")
            continue
        extra = (f", resumed from {r['resumed_from']} B, history wire/stream {r['history_ratio']:.3f}"
                 if r["contender"] == "ferry" else f", {r['runs']} run(s), exits {r['exit_codes']}")
        out.append(f"  {r['contender']}: wire {r['wire'] / MiB:.1f} MiB / stream {r['stream_bytes'] / MiB:.1f} MiB "
                   f"= {r['ratio']:.3f} in {r['wall']:.0f}s{extra}")
    return "\n".join(out)
