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
    print("\n".join(out))


if __name__ == "__main__":
    main()
