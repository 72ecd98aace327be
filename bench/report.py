#!/usr/bin/env python3
"""Turns bench/run.sh's results.jsonl into a markdown section (stdout).

usage: report.py results.jsonl "exact command line"
"""
import json
import os
import platform
import subprocess
import sys
import time


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    cmd = sys.argv[2] if len(sys.argv) > 2 else "bench/run.sh"
    by = {r["name"]: r for r in rows}
    names = [r["name"] for r in rows]

    def per_sample(r, key):
        a = r.get("samples_acked") or 0
        v = r.get(key)
        return None if not a or v is None else v / a

    metrics = [
        ("samples acknowledged (2xx)", lambda r: r["samples_acked"], 0),
        ("samples rejected / failed", lambda r: r["samples_rejected"] + r["samples_failed"], 0),
        ("active series sent", lambda r: r["series"], 0),
        ('`count({__name__=~".+"})` after ingest', lambda r: num(r["count_series"]), 0),
        ("… after kill -9 and restart", lambda r: num(r["count_series_after_restart"]), 0),
        ("samples stored (`count_over_time` summed)", lambda r: num(r.get("stored_samples")), 0),
        ("… after kill -9 and restart", lambda r: num(r.get("stored_samples_after_restart")), 0),
        ("ingest wall time, s", lambda r: r["wall_s"], 1),
        ("**ingest, samples/s**", lambda r: r["samples_per_s"], 0),
        ("server CPU during ingest, s", lambda r: r["server_cpu_s"], 1),
        ("loadgen CPU (shares the same cores), s", lambda r: r["loadgen_cpu_s"], 1),
        ("1-min load average at end of ingest", lambda r: num(r.get("loadavg_end")), 2),
        ("server CPU per sample, µs", lambda r: r["server_cpu_s"] / r["samples_acked"] * 1e6 if r["samples_acked"] else None, 2),
        ("**peak RSS (VmHWM), MiB**", lambda r: r["vmhwm_kb"] / 1024, 0),
        ("**peak RSS per active series, bytes**", lambda r: r["vmhwm_kb"] * 1024 / r["series"], 0),
        ("**disk per sample, all data as blocks (WAL excluded), bytes**", lambda r: per_sample(r, "disk_all_as_blocks"), 3),
        ("**disk per sample, everything on disk (WAL included), bytes**", lambda r: per_sample(r, "disk_total"), 3),
        ("blocks cut by the server itself", lambda r: r["blocks"], 0),
        ("  their size (VictoriaMetrics: data/ without indexdb/), MiB", lambda r: r["disk_blocks"] / 2**20, 1),
        ("  WAL, MiB", lambda r: r["disk_wal"] / 2**20, 1),
        ("  head chunks (chunks_head), MiB", lambda r: r["disk_chunks_head"] / 2**20, 1),
        ("cold start until ready, s", lambda r: r["cold_start_s"], 2),
        ("**restart after kill -9 until ready, s**", lambda r: r["replay_s"], 2),
        ("peak RSS after restart, MiB", lambda r: r["vmhwm_after_replay_kb"] / 1024, 0),
    ]
    ratios = [p for p in ("prometheus", "victoria-metrics") if "sextant" in by and p in by]
    head = ["metric"] + names + [f"sextant / {p}" for p in ratios]
    out = []
    r0 = rows[0]
    span_h = (r0["end_ms"] - r0["start_ms"]) / 3.6e6
    out.append(f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
               f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.machine()}; "
               f"workload: {r0['series']:,} series × {r0['steps']} steps = {r0['series'] * r0['steps']:,} samples, "
               f"{span_h:.1f} h of 15 s data, {r0['senders']} senders, {r0['batch']} samples/request, seed {r0['seed']}, "
               f"start_ms {r0['start_ms']}.")
    out.append("")
    vers = []
    if "prometheus" in by:
        vers.append("prometheus " + sh("prometheus --version 2>&1 | head -1 | awk '{print $3}'"))
    if "victoria-metrics" in by:
        vers.append("victoria-metrics " + sh("dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null"))
    if "sextant" in by:
        vers.append("sextant " + sh("git rev-parse --short HEAD"))
    out.append("Versions: " + ", ".join(vers) + ".")
    out.append("")
    out.append("Command: `" + cmd + "`")
    out.append("")
    out.append("| " + " | ".join(head) + " |")
    out.append("| --- |" + " ---: |" * (len(head) - 1))
    for label, f, d in metrics:
        vals = []
        for n in names:
            try:
                vals.append(f(by[n]))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append(None)
        cells = [fmt(v, d) for v in vals]
        for p in ratios:
            a, b = vals[names.index("sextant")], vals[names.index(p)]
            cells.append(f"{a / b:.2f}×" if a is not None and b else "n/a")
        out.append("| " + label + " | " + " | ".join(cells) + " |")
    errs = [(n, by[n].get("first_error")) for n in names if by[n].get("first_error")]
    if errs:
        out.append("")
        for n, e in errs:
            out.append(f"- {n}: first error from the server: `{e[:300]}`")
    out += query_section(by, names, ratios)
    print("\n".join(out))


KIND_LABEL = {"instant": "instant", "range_1h": "range 1h", "range_full": "range full"}


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return None
    p = 1.0
    for x in xs:
        p *= x
    return p ** (1 / len(xs))


def query_section(by, names, ratios):
    """The "Query latency" section: per query and kind, p50/p99 per target and Sextant/peer."""
    qn = [n for n in names if by[n].get("query")]
    if not qn:
        return []
    out = ["", "### Query latency", ""]
    q0 = by[qn[0]]["query"]
    span = lambda r: f"{(r[1] - r[0]) / 60:.0f} min, step {r[2]} s"
    out.append(f"{q0['warmup']} warm-up + {q0['runs']} timed runs per query, sequential, one keep-alive "
               f"connection; wall clock per request in ms (p99 is nearest-rank: with 5 runs, the slowest). "
               f"Instant queries at t={q0['instant_time']}; range 1h: {span(q0['range_1h'])}; "
               f"range full: {span(q0['range_full'])}. Series: how many series each target returned "
               f"({' / '.join(qn)}); ⚠ marks a disagreement.")
    out.append("")
    res = {n: {(q["id"], q["kind"]): q for q in by[n]["query"]["queries"]} for n in qn}
    keys = [(q["id"], q["kind"]) for q in q0["queries"]]
    rq = [p for p in ratios if p in qn and "sextant" in qn]
    head = ["query", "series"] + [f"{n} p50" for n in qn] + [f"{n} p99" for n in qn] + \
        [f"sextant / {p} p50 (p99)" for p in rq]
    out.append("| " + " | ".join(head) + " |")
    out.append("| --- |" + " ---: |" * (len(head) - 1))
    warnings = []
    ratio_by_kind = {p: {} for p in rq}
    for k in keys:
        cells = [f"`{k[0]}` {KIND_LABEL.get(k[1], k[1])}"]
        qs = {n: res[n].get(k) for n in qn}
        counts = [qs[n].get("series") if qs[n] and not qs[n].get("error") else None for n in qn]
        cs = " / ".join("err" if qs[n] and qs[n].get("error") else fmt(c, 0) for n, c in zip(qn, counts))
        known = {c for c in counts if c is not None}
        if len(known) > 1:
            cs += " ⚠"
            warnings.append(f"`{k[0]}` {KIND_LABEL.get(k[1], k[1])}: series differ: " +
                            ", ".join(f"{n} {fmt(c, 0)}" for n, c in zip(qn, counts)))
        for n in qn:
            if qs[n] and qs[n].get("error"):
                warnings.append(f"`{k[0]}` {KIND_LABEL.get(k[1], k[1])}: {n}: `{qs[n]['error'][:200]}`")
            elif qs[n] and qs[n].get("series_stable") is False:
                warnings.append(f"`{k[0]}` {KIND_LABEL.get(k[1], k[1])}: {n}: series count changed between runs")
        cells.append(cs)
        ok = lambda n: qs[n] and not qs[n].get("error")
        for key in ("p50_ms", "p99_ms"):
            cells += [fmt(qs[n][key], 1) if ok(n) else "n/a" for n in qn]
        for p in rq:
            if ok("sextant") and ok(p) and qs[p]["p50_ms"] > 0 and qs[p]["p99_ms"] > 0:
                r50 = qs["sextant"]["p50_ms"] / qs[p]["p50_ms"]
                r99 = qs["sextant"]["p99_ms"] / qs[p]["p99_ms"]
                ratio_by_kind[p].setdefault(k[1], []).append(r50)
                cells.append(f"{r50:.2f}× ({r99:.2f}×)")
            else:
                cells.append("n/a")
        out.append("| " + " | ".join(cells) + " |")
    for kind in ("instant", "range_1h", "range_full"):
        if not any(kind in ratio_by_kind[p] for p in rq):
            continue
        cells = [f"**geometric mean, {KIND_LABEL[kind]}**", ""] + [""] * (2 * len(qn))
        for p in rq:
            g = geomean(ratio_by_kind[p].get(kind, []))
            cells.append(f"**{g:.2f}×**" if g else "n/a")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    # Memory and CPU of the query phase.
    head = ["metric"] + qn + [f"sextant / {p}" for p in rq]
    out.append("| " + " | ".join(head) + " |")
    out.append("| --- |" + " ---: |" * (len(head) - 1))

    def decode_rate(r, only_full_rate=False):
        s = c = 0
        for q in r["query"]["queries"]:
            if q.get("error") or q.get("samples") is None or q.get("server_cpu_s") is None:
                continue
            if only_full_rate and not (q["kind"] == "range_full" and "[5m]" in q["query"]):
                continue
            s += q["samples"] * q["runs"]
            c += q["server_cpu_s"]
        return s / c if c > 0 and s > 0 else None

    rows = [
        ("**peak RSS (VmHWM) after the query phase, MiB**", lambda r: r["vmhwm_after_query_kb"] / 1024, 0),
        ("… increase over peak RSS after ingest, MiB", lambda r: (r["vmhwm_after_query_kb"] - r["vmhwm_kb"]) / 1024, 0),
        ("server CPU during the query phase (warm-ups included), s", lambda r: r["server_cpu_query_s"], 1),
        ("sum of p50 latencies over all queries, s", lambda r: sum(q["p50_ms"] for q in r["query"]["queries"]) / 1e3, 2),
        ("samples processed (`totalQueryableSamples`) per server CPU-second, all queries",
         lambda r: decode_rate(r), 0),
        ("… `[5m]` functions over the full span at step 5 m (each sample counted once)",
         lambda r: decode_rate(r, True), 0),
    ]
    for label, f, d in rows:
        vals = []
        for n in qn:
            try:
                vals.append(f(by[n]))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append(None)
        cells = [fmt(v, d) for v in vals]
        for p in rq:
            a, b = vals[qn.index("sextant")], vals[qn.index(p)]
            cells.append(f"{a / b:.2f}×" if a is not None and b else "n/a")
        out.append("| " + label + " | " + " | ".join(cells) + " |")
    out.append("")
    bw = next((by[n].get("membw_bytes_per_s") for n in qn if by[n].get("membw_bytes_per_s")), None)
    sx = by.get("sextant")
    dr = decode_rate(sx, True) if sx and sx.get("query") else None
    dr_all = decode_rate(sx) if sx and sx.get("query") else None
    line = "**Sextant raw sample-decode throughput**: "
    line += (f"{fmt(dr, 0)} samples/s/core (`[5m]` functions over the full span; {fmt(dr_all, 0)} over all queries, "
             f"where overlapping windows count samples more than once)" if dr or dr_all else "n/a")
    if bw:
        line += (f"; memory-bandwidth bound of this machine: single-core memcpy {bw / 1e9:.1f} GB/s = "
                 f"{fmt(bw / 16, 0)} samples/s at 16 bytes/sample")
        if dr:
            line += f" (Sextant at {dr / (bw / 16) * 100:.2f} % of it)"
    out.append(line + ".")
    if warnings:
        out.append("")
        out.append("Query warnings:")
        for w in warnings:
            out.append("- " + w)
            print("report.py: warning: " + w.replace("`", ""), file=sys.stderr)
    out.append("")
    out.append("Queries (ids above):")
    for q in q0["queries"]:
        if q["kind"] == "instant":
            out.append(f"- `{q['id']}`: `{q['query']}`")
    return out


if __name__ == "__main__":
    main()
