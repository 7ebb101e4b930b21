"""Summaries, the table, the issue's goals as PASS/FAIL lines, and the JSON."""

import json
import os
import statistics

MiB, GiB = 1 << 20, 1 << 30


def summarize(row):
    """Median and min-max of each figure over the repetitions; MB/s is the
    data set's send stream (as ferry's history counts it) over wall time."""
    runs = row["runs"]
    walls = [r["wall"] for r in runs]
    row["wall"] = {"median": statistics.median(walls), "min": min(walls), "max": max(walls)}
    for key in ("cpu", "cpu_tx", "cpu_rx", "wire", "wire_tx", "maxrss_tx", "peak_rss", "stream_own",
                "cpu_btrfs_send", "cpu_btrfs_receive", "cpu_send_end", "cpu_recv_end"):
        vals = [r[key] for r in runs if key in r]
        if vals:
            row[key] = statistics.median(vals)
    if row.get("stream_bytes"):
        row["mb_s"] = row["stream_bytes"] / 1e6 / row["wall"]["median"]
    return row


def add_ratios(rows):
    """ferry's ratio to each contender on the same link and data set:
    time = ferry wall / theirs (below 1 is faster), throughput = the inverse."""
    ferry = {(r["net"], r["dataset"]): r for r in rows if r["contender"] == "ferry"}
    for r in rows:
        f = ferry.get((r["net"], r["dataset"]))
        if f and r["contender"] != "ferry":
            r["ferry_time_ratio"] = f["wall"]["median"] / r["wall"]["median"]
            r["ferry_throughput_ratio"] = r["wall"]["median"] / f["wall"]["median"]
            if r.get("cpu"):
                r["ferry_cpu_ratio"] = f["cpu"] / r["cpu"]


def fmt_bytes(n):
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}B"


def table(rows):
    head = ("link", "set", "contender", "wall s", "min-max s", "MB/s", "CPU s", "peak RSS", "wire", "stream", "ferry x time", "ferry x MB/s")
    lines = [head]
    for r in rows:
        w = r["wall"]
        rss = r.get("peak_rss", r.get("maxrss_tx"))
        lines.append((
            r["net"], r["dataset"], r["contender"], f"{w['median']:.2f}", f"{w['min']:.2f}-{w['max']:.2f}",
            f"{r['mb_s']:.1f}" if r.get("mb_s") else "-", f"{r['cpu']:.2f}", fmt_bytes(rss), fmt_bytes(r["wire"]),
            fmt_bytes(r.get("stream_own")),
            f"{r['ferry_time_ratio']:.2f}" if "ferry_time_ratio" in r else "",
            f"{r['ferry_throughput_ratio']:.2f}" if "ferry_throughput_ratio" in r else ""))
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(l)).rstrip() for l in lines)


def per_gib(row, key):
    """`row[key]` CPU seconds per GiB of the data set's send stream (as ferry counts it)."""
    if row.get(key) is None or not row.get("stream_bytes"):
        return None
    return row[key] / (row["stream_bytes"] / GiB)


def per_end_table(rows):
    """CPU-s per GiB of stream at each end, where the run timed its btrfs
    children: ferry's own process trees less `btrfs send` / `btrfs receive`,
    and what btrfs itself took under ferry and under the raw pipe; then, per
    link and data set, how ferry's CPU over the raw pipe's splits up."""
    head = ("link", "set", "contender", "stream", "send end", "receive end", "btrfs send", "btrfs receive", "all")
    lines = [head]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    timed = [r for r in rows if r.get("cpu_btrfs_send") is not None and r["contender"] in ("ferry", "raw")]
    for r in timed:
        lines.append((r["net"], r["dataset"], r["contender"], fmt_bytes(r.get("stream_bytes")),
                      fmt(per_gib(r, "cpu_send_end")), fmt(per_gib(r, "cpu_recv_end")),
                      fmt(per_gib(r, "cpu_btrfs_send")), fmt(per_gib(r, "cpu_btrfs_receive")), fmt(per_gib(r, "cpu"))))
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    out = ["CPU-s per GiB of stream (send end: `ferry task run` less its btrfs send; receive end: the receiver less its btrfs receive)"]
    out += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(l)).rstrip() for l in lines]
    for f in (r for r in timed if r["contender"] == "ferry"):
        raw = next((r for r in timed if r["contender"] == "raw" and (r["net"], r["dataset"]) == (f["net"], f["dataset"])), None)
        if raw is None:
            continue
        g = lambda r, k: per_gib(r, k) or 0.0  # noqa: E731
        out.append(f"{f['net']} ({f['dataset']}): ferry over the raw pipe {g(f, 'cpu') - g(raw, 'cpu'):+.3f} CPU-s/GiB = "
                   f"send end {g(f, 'cpu_send_end'):.3f} + receive end {g(f, 'cpu_recv_end'):.3f} "
                   f"+ btrfs send {g(f, 'cpu_btrfs_send') - g(raw, 'cpu_btrfs_send'):+.3f} "
                   f"+ btrfs receive {g(f, 'cpu_btrfs_receive') - g(raw, 'cpu_btrfs_receive'):+.3f} "
                   f"- the pipe's shell {g(raw, 'cpu') - g(raw, 'cpu_btrfs_send') - g(raw, 'cpu_btrfs_receive'):.3f}")
    return "\n".join(out)


def goals(rows, scale, link_label, fast=None, phases_run=None, contenders_run=None):
    """The issue's goals, each with the measured ratio; a goal whose figures are
    missing (a contender failed) is FAIL with the reason, unless `phases_run`
    (a set of bench phases) or `contenders_run` (a set of names, empty for
    all) left its phase or a contender out: then it is SKIP."""
    def get(net, ds, who):
        for r in rows:
            if (r["net"], r["dataset"], r["contender"]) == (net, ds, who):
                return r
        return None

    out = []

    def goal(name, fn, needs, who=("ferry",)):
        if phases_run is not None and not set(needs) <= phases_run:
            out.append({"goal": name, "measured": None, "limit": None, "pass": None,
                        "error": f"not measured in this run (needs --only {','.join(needs)})"})
            return
        if contenders_run and not set(who) <= contenders_run:
            out.append({"goal": name, "measured": None, "limit": None, "pass": None,
                        "error": f"not measured in this run (needs --contenders {','.join(who)})"})
            return
        try:
            measured, limit, ok = fn()
            out.append({"goal": name, "measured": measured, "limit": limit, "pass": bool(ok)})
        except (TypeError, KeyError, ValueError, ZeroDivisionError) as e:
            out.append({"goal": name, "measured": None, "limit": None, "pass": False, "error": f"missing figure: {e!r}"})

    lo = "loopback"
    fa, ra = get(lo, "a", "ferry"), get(lo, "a", "raw")
    goal("(a) loopback: ferry throughput >= 0.95x raw pipe",
         lambda: (ra["wall"]["median"] / fa["wall"]["median"], 0.95, ra["wall"]["median"] / fa["wall"]["median"] >= 0.95),
         ["lo-a"], ("ferry", "raw"))
    goal("(a) loopback: ferry CPU <= 1.3x raw pipe",
         lambda: (fa["cpu"] / ra["cpu"], 1.3, fa["cpu"] / ra["cpu"] <= 1.3), ["lo-a"], ("ferry", "raw"))
    for ds, factor in (("b", 2.0), ("a", 1.0)):
        f = get(link_label, ds, "ferry")
        for who, need in (("btrbk_default", factor), ("btrbk_tuned", 1.0)):
            o = get(link_label, ds, who)
            what = f"{need:g}x faster than" if need > 1 else "no slower than"
            goal(f"({ds}) {link_label}: ferry {what} {who} (speedup)",
                 lambda f=f, o=o, need=need: (o["wall"]["median"] / f["wall"]["median"], need,
                                              o["wall"]["median"] / f["wall"]["median"] >= need),
                 [f"link-{ds}"], ("ferry", who))
    for end, key in (("sending", "cpu_send_end"), ("receiving", "cpu_recv_end")):
        goal(f"(a) loopback: ferry's {end} end <= 0.35 CPU-s per GiB of stream",
             lambda key=key: (per_gib(fa, key), 0.35, per_gib(fa, key) <= 0.35), ["lo-a"])
    for net, phase in ((lo, "lo-z"), (link_label, "link-z")):
        fz = get(net, "z", "ferry")
        best = lambda net=net: min(r["wall"]["median"] for r in rows  # noqa: E731
                                   if (r["net"], r["dataset"]) == (net, "z") and r["contender"].startswith("btrbk"))
        goal(f"(z) {net}: ferry 1.2x faster than the best btrbk (send_protocol 2, compressed data) (speedup)",
             lambda fz=fz, best=best: (best() / fz["wall"]["median"], 1.2, best() / fz["wall"]["median"] >= 1.2),
             [phase], ("ferry", "btrbk_v2", "btrbk_v2_tuned"))
    fvi = get(lo, "vi", "ferry")
    goal("(v) loopback: ferry's incremental stream (64 KiB written, 1 MiB punched) < 1 MiB (MiB)",
         lambda: (fvi["stream_own"] / MiB, 1, fvi["stream_own"] < MiB), ["lo-sparse"])
    if fast is not None:
        from sysenv import rate_bits
        fga, fgb, tgb = get(fast.label, "a", "ferry"), get(fast.label, "b", "ferry"), get(fast.label, "b", "btrbk_tuned")
        goal(f"(a) {fast.label}: ferry within 5% of the link rate (sender's interface bytes over wall time, share of {fast.rate})",
             lambda: (fga["wire_tx"] * 8 / fga["wall"]["median"] / rate_bits(fast.rate), 0.95,
                      fga["wire_tx"] * 8 / fga["wall"]["median"] / rate_bits(fast.rate) >= 0.95), ["gig-a"])
        goal(f"(b) {fast.label}: ferry 1.5x faster than btrbk_tuned (speedup)",
             lambda: (tgb["wall"]["median"] / fgb["wall"]["median"], 1.5, tgb["wall"]["median"] / fgb["wall"]["median"] >= 1.5),
             ["gig-b"], ("ferry", "btrbk_tuned"))
    fc = get(lo, "c", "ferry")
    goal("(c) loopback: ferry 1% incremental <= 3% of ferry's full (a) time",
         lambda: (fc["wall"]["median"] / fa["wall"]["median"], 0.03, fc["wall"]["median"] / fa["wall"]["median"] <= 0.03),
         ["lo-a", "lo-inc"])
    fd = get(lo, "d", "ferry")
    goal("(d) loopback: ferry no-change run < 0.5 s end to end (s)",
         lambda: (fd["wall"]["median"], 0.5, fd["wall"]["median"] < 0.5), ["lo-inc"])
    fda = get(lo, "d-after", "ferry")
    goal("(d) loopback: ferry no-change run right after a 2 GiB run that pruned < 0.5 s end to end (s)",
         lambda: (fda["wall"]["median"], 0.5, fda["wall"]["median"] < 0.5), ["lo-inc"])
    goal(f"scale: {scale.get('tasks')} idle tasks, ferry sender peak RSS <= 64 MiB (MiB)",
         lambda: (scale["vm_hwm"] / MiB, 64, scale["vm_hwm"] <= 64 * MiB), ["scale"])
    goal(f"scale: {scale.get('tasks')} idle tasks, ferry sender CPU <= 1% of one core (%)",
         lambda: (scale["cpu_pct"], 1.0, scale["cpu_pct"] <= 1.0), ["scale"])
    return out


def goal_lines(gs):
    lines = []
    for g in gs:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[g["pass"]]
        if g["measured"] is None:
            lines.append(f"{verdict}  {g['goal']}: {g.get('error')}")
        else:
            lines.append(f"{verdict}  {g['goal']}: measured {g['measured']:.3f}, limit {g['limit']}")
    return "\n".join(lines)


def write_json(doc, out_dir, stamp):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"bench-{stamp}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
    latest = os.path.join(out_dir, "latest.json")
    with open(latest + ".tmp", "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
    os.replace(latest + ".tmp", latest)
    return path
