#!/usr/bin/env python3
"""ferry's benchmark (issues 5 and 16): ferry against `btrfs send | btrfs receive`,
the same through ssh, and btrbk (default and tuned; on the compressed pool with
send stream v2 and compressed data), on loopback and on shaped 100 Mbit and
1 Gbit links between network namespaces, with each end's own CPU; plus the idle
cost of a sender holding many tasks. Run as root on a scratch machine: `make bench`.

Contenders alternate within each repetition (ABCD ABCD ABCD), every measured run
starts with cold caches, and every run is undone before the next one, so each
repetition measures the same transfer. Everything the bench creates (pools,
loop devices, namespaces, daemons, temp dirs) is removed on exit, on error and
on Ctrl-C. Output: a table, PASS/FAIL goal lines, target/bench/*.json.
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data  # noqa: E402
import report  # noqa: E402
import resume  # noqa: E402
import sysenv  # noqa: E402
from contenders import Bench, Btrbk, Ferry, Pipe  # noqa: E402
from sysenv import (Cleanup, Procs, Ssh, btrfs_wrappers, cpu_ticks, install_signal_exit,  # noqa: E402
                    make_link, make_loopback, make_pool, proc_status, sh, subvol_create)

MiB, GiB = 1 << 20, 1 << 30
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Phases --only can pick: network and data set ("inc" is (d), (c) and (d) right
# after a large run; "sparse" is (v) and its incremental), the idle scale figure
# and the resume figure.
PHASES = ["lo-a", "lo-b", "lo-inc", "lo-z", "lo-sparse", "link-b", "link-z", "link-a", "gig-a", "gig-b", "scale",
          "link-resume"]
CONTENDERS = ["raw", "ssh", "btrbk_default", "btrbk_tuned", "btrbk_v2", "btrbk_v2_tuned", "ferry"]
NEEDS = ["btrfs", "mkfs.btrfs", "ip", "tc", "nft", "ssh", "ssh-keygen", "/usr/sbin/sshd", "btrbk", "mbuffer", "zstd",
         "/usr/bin/time"]


class OneLineErrors(argparse.ArgumentParser):
    """Bad flags get one line naming the problem (and `--help`), exit 2."""

    def error(self, message):
        self.exit(2, f"bench: {message} (see --help)\n")


def parse():
    p = OneLineErrors(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny data, 1 repetition, 20 idle tasks for 2 s: every contender and both links, in well under a minute")
    p.add_argument("--ferry", default=os.path.join(REPO, "target/release/ferry"), help="the ferry binary to measure")
    p.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    p.add_argument("--inc-reps", type=int, default=int(os.environ.get("BENCH_INC_REPS", "0")),
                   help="repetitions of the small incrementals (c), (d), (vi) (default: 7, at least --reps): "
                        "a tenth of a second run to run varies by a few hundredths, so their medians need more")
    p.add_argument("--idle-secs", type=float, default=float(os.environ.get("BENCH_IDLE_SECS", "60")))
    p.add_argument("--tasks", type=int, default=int(os.environ.get("BENCH_TASKS", "1000")))
    p.add_argument("--rate", default=os.environ.get("BENCH_RATE", "100mbit"), help="the shaped link's rate (tc tbf)")
    p.add_argument("--fast-rate", default=os.environ.get("BENCH_FAST_RATE", "1gbit"),
                   help="the fast shaped link's rate (tc tbf), for the gig-* phases")
    p.add_argument("--link-ssh-a", action="store_true", default=os.environ.get("BENCH_LINK_SSH_A") == "1",
                   help="also run the plain ssh pipe with data set (a) on the shaped link (slow: adds reps x ~3 min)")
    p.add_argument("--skip-link-a", action="store_true", default=os.environ.get("BENCH_SKIP_LINK_A") == "1",
                   help="leave out data set (a) on the shaped link (link-bound, ~18 of the ~50 minutes); its goals then say SKIP")
    p.add_argument("--out-dir", default=os.path.join(REPO, "target/bench"))
    p.add_argument("--warm", action="store_true", help="skip dropping caches before each run (--quick does)")
    p.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                   help="comma-separated phases to run, of: " + ",".join(PHASES) + " (default: all); "
                        "goals whose figures were not measured say SKIP")
    p.add_argument("--contenders", default=os.environ.get("BENCH_CONTENDERS", ""),
                   help="comma-separated contenders, of: " + ",".join(CONTENDERS) + " (default: all)")
    a = p.parse_args()
    a.inc_reps = a.inc_reps or max(a.reps, 7)
    a.only = set(filter(None, a.only.split(","))) or set(PHASES)
    a.contenders = set(filter(None, a.contenders.split(",")))
    for bad in a.only - set(PHASES):
        p.error(f"--only: unknown phase {bad!r}; pick from {','.join(PHASES)}")
    for bad in a.contenders - set(CONTENDERS):
        p.error(f"--contenders: unknown contender {bad!r}; pick from {','.join(CONTENDERS)}")
    if a.skip_link_a:
        a.only.discard("link-a")
    if a.quick:
        a.reps, a.idle_secs, a.tasks = 1, 2.0, 20
        a.inc_reps = 1
        a.link_ssh_a = True
        # Cold caches cost seconds per run (perl, ssh, btrfs reload from disk);
        # the quick mode checks that everything works, not how fast.
        a.warm = True
    return a


def check_machine(args):
    if os.geteuid() != 0:
        sys.exit("bench: run as root (loop pools, namespaces, btrfs receive need it)")
    missing = [n for n in NEEDS if not shutil.which(n)]
    if missing:
        sys.exit(f"bench: missing {' '.join(missing)}; `make bench-deps` installs them")
    if not os.access(args.ferry, os.X_OK):
        sys.exit(f"bench: {args.ferry} is not an executable; `make build` or pass --ferry")


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main():
    args = parse()
    check_machine(args)
    install_signal_exit()
    cleanup = Cleanup()
    try:
        return run(args, cleanup)
    finally:
        say("cleaning up")
        cleanup.run()


def run(args, cleanup):
    started = datetime.datetime.now(datetime.timezone.utc)
    # Other work on this machine skews every figure; the load says how much there was.
    load_start = open("/proc/loadavg").read().split()[:3]
    size_a, size_b = (8 * MiB, 6 * MiB) if args.quick else (2 * GiB, 500 * MiB)
    size_z = size_b
    # The VM image: 8 GiB apparent, 256 scattered MiB of data (quick: 1 GiB, 8).
    image, pieces = (1 * GiB, 8) if args.quick else (8 * GiB, 256)
    if not args.only & {"lo-a", "lo-inc", "link-a", "gig-a"}:
        size_a = 8 * MiB  # (a) is still every contender's share, just not a measured one
    if not args.only & {"lo-b", "link-b", "gig-b"}:
        size_b = 1 * MiB  # every contender still gets its (b) share, just not a measured one
    if not args.only & {"lo-z", "link-z"}:
        size_z = 1 * MiB
    if "lo-sparse" not in args.only:
        image, pieces = 64 * MiB, 2
    work = tempfile.mkdtemp(prefix="ferry-bench.", dir="/var/tmp")
    cleanup.push(f"work dir {work}", lambda: shutil.rmtree(work, ignore_errors=True))
    # Namespace and veth names carry our pid: a second bench (say, the quick
    # test while a full run is going) never collides with this one.
    prefix = f"fb{os.getpid()}"

    say(f"pools and data sets in {work}")
    src = make_pool(cleanup, work, "src", 1 * GiB if args.quick else 8 * GiB)
    dst = make_pool(cleanup, work, "dst", 2 * GiB if args.quick else 24 * GiB)
    # The compressed pools: (b)'s text stored zstd-compressed, as a NAS share is.
    srcz = make_pool(cleanup, work, "srcz", 1 * GiB if args.quick else 4 * GiB, "compress=zstd:3")
    dstz = make_pool(cleanup, work, "dstz", 1 * GiB if args.quick else 8 * GiB, "compress=zstd:3")
    scale_pool = make_pool(cleanup, work, "scale", 512 * MiB)
    golden = {k: os.path.join(src, "golden", k) for k in ("a", "b", "v")}
    golden["z"] = os.path.join(srcz, "golden", "z")
    os.makedirs(os.path.join(src, "golden"))
    os.makedirs(os.path.join(srcz, "golden"))
    for k in golden.values():
        subvol_create(k)
    t = time.monotonic()
    data.write_incompressible(golden["a"], size_a)
    tree_bytes = data.write_tree(golden["b"], size_b)
    tree_z = data.write_tree(golden["z"], size_z)
    image_data = data.write_sparse_image(golden["v"], image, pieces)
    sh("sync")
    stored_z = sh("du", "-sb", "--apparent-size", golden["z"]).split()[0]
    say(f"data: (a) {report.fmt_bytes(size_a)} incompressible, (b) {report.fmt_bytes(tree_bytes)} in "
        f"{sum(len(f) for _, _, f in os.walk(golden['b']))} files, (z) {report.fmt_bytes(tree_z)} "
        f"({stored_z} bytes apparent) on compress=zstd:3, (v) a {report.fmt_bytes(image)} image holding "
        f"{report.fmt_bytes(image_data)}, written in {time.monotonic() - t:.0f}s")

    lo = make_loopback(cleanup, prefix)
    link = make_link(cleanup, prefix, args.rate)
    gig = make_link(cleanup, f"{prefix}g", args.fast_rate, subnet="10.78.0")
    procs = Procs(cleanup)  # pushed last: daemons stop before namespaces and pools go
    ssh = Ssh(work)
    b = Bench(work, src, dst, os.path.abspath(args.ferry), procs, ssh, btrfs_wrappers(work), cold=not args.warm)
    bz = b.on_pools(srcz, dstz, "z")
    # The logs of every run (btrbk's summaries, daemons' stderr) outlive the work dir.
    logs_copy = os.path.join(args.out_dir, "logs-latest")
    cleanup.push("copy of the logs", lambda: (shutil.rmtree(logs_copy, ignore_errors=True),
                                               shutil.copytree(b.logs, logs_copy)))
    for net in (lo, link, gig):
        ssh.start_sshd(procs, net, b.log(f"sshd-{net.rx}"))

    ferry = Ferry(b)
    raw, over_ssh, btrbk_default, btrbk_tuned = Pipe(b, over_ssh=False), Pipe(b, over_ssh=True), Btrbk(b, tuned=False), Btrbk(b, tuned=True)
    everyone = [raw, over_ssh, btrbk_default, btrbk_tuned, ferry]
    for c in everyone:
        for ds in ("a", "b", "c"):
            c.add_share(ds, golden["b" if ds == "b" else "a"])
    for c in (ferry, btrbk_default):
        c.add_share("v", golden["v"])
    # The compressed pool's contenders: send stream v2 with compressed extents passed through.
    ferry_z = Ferry(bz)
    compressed = [Pipe(bz, over_ssh=False, v2=True), Btrbk(bz, tuned=False, v2=True), Btrbk(bz, tuned=True, v2=True), ferry_z]
    for c in compressed:
        c.add_share("z", golden["z"])

    rows = {}
    link_set = [ferry, btrbk_default, btrbk_tuned]
    phases = [("lo-a", lo, "a", everyone), ("lo-b", lo, "b", everyone), ("lo-inc", lo, "inc", everyone),
              ("lo-z", lo, "z", compressed), ("lo-sparse", lo, "sparse", [btrbk_default, ferry]),
              ("link-b", link, "b", link_set + [over_ssh]), ("link-z", link, "z", compressed[1:]),
              ("link-a", link, "a", link_set + ([over_ssh] if args.link_ssh_a else [])),
              ("gig-a", gig, "a", [ferry, btrbk_tuned]), ("gig-b", gig, "b", [ferry, btrbk_tuned])]
    for phase, net, ds, who in phases:
        who = [c for c in who if not args.contenders or c.name in args.contenders]
        if phase not in args.only or not who:
            continue
        if ds == "inc":
            say("incremental baselines (unmeasured full sends of (a))")
            for c in who:
                c.baseline(net)
            # (d) before (c): reverting (c)'s change leaves new extents behind,
            # so the share is no longer unchanged against the baseline.
            repetitions(args, rows, net, "d", who, golden)
            repetitions(args, rows, net, "c", who, golden)
            for c in who:
                c.drop_baseline()
            if ferry in who:
                after_large(args, rows, net, ferry)
        elif ds == "sparse":
            repetitions(args, rows, net, "v", who, golden, pieces)
            say("sparse image baselines (unmeasured full sends of (v))")
            for c in who:
                c.baseline(net, "v")
            repetitions(args, rows, net, "vi", who, golden, pieces)
            for c in who:
                c.drop_baseline("v")
        elif phase == "link-a":
            # Link-bound to within 1% for everyone, and 3 minutes a run: two
            # repetitions keep the whole bench under an hour.
            repetitions(args, rows, net, ds, who, golden, reps=min(args.reps, 2))
        else:
            repetitions(args, rows, net, ds, who, golden)

    # The resume figure (bench/resume.py): its own shares, the same link.
    resumed = {}
    if "link-resume" in args.only and (not args.contenders or args.contenders & {"ferry", "btrbk_default"}):
        say("link-resume: an incremental cut at 50% by a blackhole longer than the keepalive")
        resumed = resume.figure(args, b, cleanup, ferry, lo, link)

    scale = {}
    if "scale" in args.only:
        say(f"scale: {args.tasks} idle tasks for {args.idle_secs:g}s")
        scale = scale_figure(args, b, ferry, lo, scale_pool)

    # MB/s of every contender is measured against the same stream: the data
    # set's `btrfs send` stream as ferry's history counts it (uncompressed).
    streams = {}
    for r in rows.values():
        if r["contender"] == "ferry" and r["runs"]:
            streams[r["dataset"]] = sorted(x["ferry_stream_bytes"] for x in r["runs"])[len(r["runs"]) // 2]
    out_rows = []
    for r in rows.values():
        r["stream_bytes"] = streams.get(r["dataset"])
        if r["runs"]:
            out_rows.append(report.summarize(r))
        else:
            say(f"no successful run of {r['contender']} on {r['net']} ({r['dataset']}): {r['errors'][:1]}")
    report.add_ratios(out_rows)
    gs = report.goals(out_rows, scale, link.label, gig, args.only, args.contenders)
    gs.append(resume.goal(resumed))

    print()
    print(report.table(out_rows))
    print()
    print(report.per_end_table(out_rows))
    if scale:
        print(f"\nscale: {scale['tasks']} tasks added in {scale['add_secs']:.1f}s; idle sender over {scale['idle_secs']:g}s: "
              f"VmRSS {scale['vm_rss'] / MiB:.1f} MiB, VmHWM {scale['vm_hwm'] / MiB:.1f} MiB, "
              f"CPU {scale['cpu_secs']:.2f}s = {scale['cpu_pct']:.2f}% of one core")
    if resumed:
        print("\n" + resume.lines(resumed))
    print()
    print(report.goal_lines(gs))
    doc = {
        "started_at": started.isoformat(), "ended_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "quick": args.quick, "reps": args.reps, "inc_reps": args.inc_reps, "ferry": b.ferry,
        "ferry_version": sh(b.ferry, "--version").strip(),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "btrbk": sh("btrbk", "--version").strip(), "loadavg_start": load_start, "loadavg_end": open("/proc/loadavg").read().split()[:3]},
        "link": {"rate": args.rate, "tbf": "burst 32kbit latency 400ms, both ends"},
        "fast_link": {"rate": args.fast_rate, "tbf": f"burst {sysenv.tbf_burst(args.fast_rate)} latency 400ms, both ends"},
        "datasets": {"a": {"what": "incompressible", "bytes": size_a},
                     "b": {"what": "compressible tree of small files", "bytes": tree_bytes},
                     "c": {"what": "1% of (a) overwritten in place, incremental"},
                     "d": {"what": "no change, incremental"},
                     "d-after": {"what": "no change, incremental, right after a 2 GiB incremental that pruned the "
                                         "previous replica (one receiver for both; warm, nothing synced in between; "
                                         "keep 1 on both sides)"},
                     "z": {"what": "(b)'s text on pools mounted compress=zstd:3, send stream v2 with compressed "
                                   "extents", "bytes": tree_z, "apparent": int(stored_z)},
                     "v": {"what": "sparse VM image, full", "bytes": image, "data": image_data},
                     "vi": {"what": "sparse VM image, incremental: 64 KiB written, 1 MiB hole punched"}},
        "results": out_rows + [r for r in rows.values() if not r["runs"]],
        "goals": gs, "scale": scale, "resume": resumed,
        "notes": "wall/cpu/wire are medians over reps; wire = interface tx bytes of the namespace(s), both directions, "
                 "headers included (wire_tx: the sending side's interface only); cpu = rusage of the sending command "
                 "+ /proc tick deltas of the receiving daemon (ferry receiver or sshd, including the children they "
                 "reaped); cpu_btrfs_send/receive = rusage of those btrfs runs (a timed wrapper, full sets only); "
                 "cpu_send_end/recv_end (ferry) = cpu_tx/cpu_rx less them; peak_rss (ferry only) = max of "
                 "`ferry task run` maxrss and the receiver's VmHWM; maxrss_tx = the sending command's maxrss; "
                 "stream_own = the send stream this contender made (ferry: its history; others: their snapshot "
                 "sent again with the same flags, counted).",
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = report.write_json(doc, args.out_dir, stamp)
    print(f"\nJSON: {path} (and {os.path.join(args.out_dir, 'latest.json')})")
    return 0


def repetitions(args, rows, net, ds, who, golden, pieces=0, reps=None):
    """ABCD ABCD ABCD: each repetition runs every contender once, in turn."""
    reps = reps or (args.inc_reps if ds in ("c", "d", "vi") else args.reps)
    changes = {
        "c": (data.change_one_percent, lambda share: data.revert_one_percent(share, golden["a"])),
        "vi": (lambda share: data.change_sparse_image(share, pieces),
               lambda share: data.revert_sparse_image(share, golden["v"], pieces)),
    }
    change, revert = changes.get(ds, (None, None))
    for rep in range(reps):
        for c in who:
            row = new_row(rows, net, ds, c)
            share = os.path.join(c.home, c.share(ds))
            try:
                if change:
                    change(share)
                r = c.run(ds, net)
                # Everyone's own stream, where the figure is about the stream (once: it is the same every time).
                if ds in ("z", "v", "vi") and c.name != "ferry" and rep == 0:
                    r["stream_own"] = c.stream_size(ds)
                row["runs"].append(r)
                say(f"{net.label} ({ds}) rep {rep + 1}/{reps} {c.name}: {r['wall']:.2f}s, "
                    f"cpu {r['cpu']:.2f}s, wire {report.fmt_bytes(r['wire'])}")
            except RuntimeError as e:
                # One contender's failure is reported, not fatal: the others still count.
                row["errors"].append(str(e)[-2000:])
                say(f"{net.label} ({ds}) rep {rep + 1} {c.name} FAILED: {str(e)[-600:]}")
            finally:
                if revert:
                    revert(share)
                c.reset(ds)


def new_row(rows, net, ds, c):
    key = (net.label, ds, c.name)
    return rows.setdefault(key, {"net": net.label, "dataset": ds, "contender": c.name, "runs": [], "errors": []})


def after_large(args, rows, net, ferry):
    """(d) right after a large run, ferry only: see `Ferry.after_large`."""
    for rep in range(args.reps):
        row = new_row(rows, net, "d-after", ferry)
        try:
            r = ferry.after_large(net)
            row["runs"].append(r)
            say(f"{net.label} (d-after) rep {rep + 1}/{args.reps} ferry: {r['wall']:.2f}s, cpu {r['cpu']:.2f}s")
        except RuntimeError as e:
            row["errors"].append(str(e)[-2000:])
            say(f"{net.label} (d-after) rep {rep + 1} ferry FAILED: {str(e)[-600:]}")


def scale_figure(args, b, ferry, net, pool):
    """A third appliance whose sender holds N enabled tasks on N small subvolumes
    (task add refuses two shares of one name to one target), each on a yearly
    cron so none is due; then RSS and CPU of `ferry sender` sitting idle."""
    nas3 = os.path.join(b.work, "nas3")
    ferry.cli(nas3, "init", "--name", "nas3")
    ferry.cli(nas3, "appliance", "add", "nas2", "--address", net.addr,
              "--fingerprint", ferry.id(ferry.nas2)["fingerprint"])
    paths = [os.path.join(pool, f"s{i:04d}") for i in range(args.tasks)]
    for path in paths:
        subvol_create(path)
    t0 = time.monotonic()
    for i, path in enumerate(paths):
        ferry.cli(nas3, "task", "add", f"task{i:04d}", "--share", path, "--target", "nas2", "--pool", "backup",
                  "--frequency", "0 0 1 1 *")
    add_secs = time.monotonic() - t0
    out, err = b.log("scale-sender-out"), b.log("scale-sender")
    p = b.procs.start([b.ferry, "--state-dir", nas3, "--config", "/dev/null", "sender"], ns=net.tx, stdout=out, stderr=err)
    try:
        for _ in range(600):
            with open(out.name) as f1, open(err.name) as f2:
                m = re.search(r"sender running: (\d+) task", f1.read() + f2.read())
            if m or p.poll() is not None:
                break
            time.sleep(0.05)
        if not m:
            raise RuntimeError(f"ferry sender did not report its tasks; see {err.name}")
        time.sleep(0.5 if args.quick else 2.0)  # let start-up settle; its allocations still show in VmHWM
        c0 = cpu_ticks(p.pid)
        time.sleep(args.idle_secs)
        cpu = cpu_ticks(p.pid) - c0
        rss, hwm = proc_status(p.pid, "VmRSS"), proc_status(p.pid, "VmHWM")
        threads = len(os.listdir(f"/proc/{p.pid}/task"))
    finally:
        b.procs.stop(p)
    return {"tasks": args.tasks, "scheduled": int(m.group(1)), "add_secs": add_secs, "idle_secs": args.idle_secs,
            "cpu_secs": cpu, "cpu_pct": 100 * cpu / args.idle_secs, "vm_rss": rss, "vm_hwm": hwm, "threads": threads}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except subprocess.CalledProcessError as e:
        traceback.print_exc()
        sys.exit(1)
