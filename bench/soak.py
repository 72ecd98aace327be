#!/usr/bin/env python3
"""Bounded soak of one Sextant server: steady ingest, dashboard queries, rules, restarts.

Starts `sextant serve` with its embedded defaults (built-in rules and dashboards, self-monitoring,
host metrics) in a fresh data dir, then for --minutes:

* writes every series once per --interval-s with remote_write 1.0 (protobuf + snappy, both
  encoded here with the standard library) at the current time, in requests of --batch samples;
  a request is retried on connection errors, 429 and 5xx for up to 60 s, like Prometheus;
* runs every query of the built-in dashboards (dashboards/*.yml, template variables widened to
  match all) in a loop, as instant queries, and records their latency and errors;
* lets the built-in rules evaluate and reads their failure counters from /metrics;
* restarts the server twice: kill -9 at 1/3 of the run and SIGTERM at 2/3;
* samples the server's RSS every --rss-every-s seconds into a CSV.

At the end every acknowledged (2xx) sample must be stored: for each series the stored sample
count (count_over_time over the whole run) must be at least the number of acknowledged writes and
at most the number attempted. Prints one JSON object (and writes it to --out), exit 1 when samples
were lost, queries failed or rule evaluations failed.

Only the Python standard library is used, so the short form runs in `cargo test`
(crates/sextant/tests/soak.rs); bench/soak.sh runs the long form on the release build.
"""

import argparse
import csv
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- wire encoding (remote_write 1.0)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def timeseries(labels, value, ts_ms):
    body = b"".join(
        field_bytes(1, field_bytes(1, k.encode()) + field_bytes(2, v.encode()))
        for k, v in labels
    )
    sample = b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ts_ms)
    return field_bytes(1, body + field_bytes(2, sample))


def snappy_literal(data):
    """A valid snappy block made of literals only (no compression, but any decoder reads it)."""
    out = bytearray(varint(len(data)))
    for i in range(0, len(data), 60000):
        chunk = data[i:i + 60000]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
    return bytes(out)


# ---------------------------------------------------------------- server process

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data_dir, port, log_path):
        self.binary, self.data_dir, self.port, self.log_path = binary, data_dir, port, log_path
        self.proc = None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout=120):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", self.data_dir, "--log-level", "warn"],
            stdout=log, stderr=log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def stop(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            pass
        return None


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def dashboard_queries():
    """Every `expr:` of the built-in dashboards, template variables widened to match everything."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.yml"))):
        with open(path) as f:
            lines = f.read().splitlines()
        for n, line in enumerate(lines):
                m = re.match(r"(\s*)-?\s*expr:\s*(.+?)\s*$", line)
                if not m:
                    continue
                q = m.group(2)
                if q[0] in "|>":   # block scalar: the more-indented lines that follow
                    indent, body = len(m.group(1)), []
                    for nxt in lines[n + 1:]:
                        if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent + 2:
                            break
                        body.append(nxt.strip())
                    q = " ".join(x for x in body if x)
                if len(q) >= 2 and q[0] == q[-1] and q[0] in "'\"":
                    q = q[1:-1].replace("''", "'") if q[0] == "'" else json.loads(q)
                q = (q.replace("$__rate_interval", "1m").replace("$__interval", "15s")
                      .replace("$__range", "1h"))
                q = re.sub(r'=~"\$\w+"', '=~".*"', q)
                q = re.sub(r'="\$\w+"', '=~".*"', q)
                out.append((os.path.basename(path), q))
    return out


def metric_sum(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return total


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ---------------------------------------------------------------- the soak

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--interval-s", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--query-pause-s", type=float, default=0.5)
    ap.add_argument("--rss-every-s", type=float, default=10)
    ap.add_argument("--out", default="")
    ap.add_argument("--rss-csv", default="")
    ap.add_argument("--keep", action="store_true", help="keep the data dir and log")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="sextant-soak-")
    srv = Server(a.binary, os.path.join(work, "data"), free_port(), os.path.join(work, "server.log"))
    srv.start()
    t0 = time.time()
    end = t0 + a.minutes * 60
    stop = threading.Event()
    lock = threading.Lock()   # guards srv restarts vs. RSS sampling
    series = [[("__name__", "soak_value"), ("instance", f"i{i % 50}"), ("job", "soak"),
               ("series", str(i))] for i in range(a.series)]   # sorted, as remote_write requires
    fatal = []
    acked = [0] * a.series
    attempted = [0] * a.series
    write_stats = {"requests": 0, "acked_requests": 0, "dropped_requests": 0, "retries": 0,
                   "late_rounds": 0, "samples_acked": 0}
    query_lat, query_errors = [], []
    rule_failures = {"total": 0.0}
    rss_rows = []
    events = []

    def send(body, lo, hi):
        deadline = time.time() + 60
        for i in range(lo, hi):
            attempted[i] += 1
        write_stats["requests"] += 1
        while not stop.is_set():
            try:
                st, resp = http("POST", srv.url("/api/v1/write"), body, {
                    "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                    "X-Prometheus-Remote-Write-Version": "0.1.0"}, timeout=30)
            except Exception:
                st, resp = None, b""
            if st is not None and 200 <= st < 300:
                for i in range(lo, hi):
                    acked[i] += 1
                write_stats["acked_requests"] += 1
                write_stats["samples_acked"] += hi - lo
                return
            if st is not None and st < 500 and st != 429:
                fatal.append(f"write refused with {st}: {resp[:300]!r}")
                stop.set()
                return
            if time.time() > deadline:
                write_stats["dropped_requests"] += 1
                return
            write_stats["retries"] += 1
            time.sleep(0.5)

    def writer():
        n = 0
        while not stop.is_set() and time.time() < end:
            due = t0 + n * a.interval_s
            now = time.time()
            if due > now:
                time.sleep(due - now)
            elif now - due > a.interval_s:
                write_stats["late_rounds"] += 1
            ts = int(time.time() * 1000)
            for lo in range(0, a.series, a.batch):
                hi = min(a.series, lo + a.batch)
                body = b"".join(timeseries(series[i], float(n), ts) for i in range(lo, hi))
                send(snappy_literal(body), lo, hi)
            n += 1

    queries = dashboard_queries()

    def querier():
        while not stop.is_set() and time.time() < end:
            for dash, q in queries:
                if stop.is_set():
                    return
                with lock:
                    pass   # do not query across a restart window
                start = time.time()
                try:
                    st, body = http("POST", srv.url("/api/v1/query"),
                                    urllib.parse.urlencode({"query": q}).encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded"})
                    ok = st == 200 and json.loads(body).get("status") == "success"
                except Exception as e:
                    st, body, ok = None, str(e).encode(), False
                if ok:
                    query_lat.append(time.time() - start)
                elif not restarting.is_set():
                    query_errors.append({"dashboard": dash, "query": q, "status": st,
                                         "body": body[:300].decode(errors="replace")})
                time.sleep(a.query_pause_s)

    def rule_failure_count():
        st, body = http("GET", srv.url("/metrics"))
        if st != 200:
            return 0.0
        return metric_sum(body.decode(errors="replace"), "prometheus_rule_evaluation_failures_total")

    restarting = threading.Event()

    def restart(sig, why):
        rule_failures["total"] += rule_failure_count()
        with lock:
            restarting.set()
            started = time.time()
            srv.stop(sig)
            srv.start()
            restarting.clear()
        events.append({"t_s": round(started - t0, 1), "event": why,
                       "ready_after_s": round(time.time() - started, 2)})

    threads = [threading.Thread(target=writer, daemon=True),
               threading.Thread(target=querier, daemon=True)]
    for t in threads:
        t.start()
    plan = [(t0 + (end - t0) / 3, signal.SIGKILL, "kill -9"),
            (t0 + 2 * (end - t0) / 3, signal.SIGTERM, "SIGTERM")]
    next_rss = t0
    try:
        while time.time() < end and not stop.is_set():
            now = time.time()
            if plan and now >= plan[0][0]:
                _, sig, why = plan.pop(0)
                restart(sig, why)
                continue
            if now >= next_rss:
                with lock:
                    rss = srv.rss_kb()
                if rss is not None:
                    rss_rows.append((round(now - t0, 1), rss))
                next_rss += a.rss_every_s
            time.sleep(0.2)
        for t in threads:
            t.join(timeout=120)
    finally:
        stop.set()

    # Verification: every acknowledged sample is stored.
    rule_failures["total"] += rule_failure_count()
    span = int(time.time() - t0) + 120
    st, body = http("POST", srv.url("/api/v1/query"), urllib.parse.urlencode(
        {"query": f'count_over_time(soak_value{{job="soak"}}[{span}s])'}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"}, timeout=300)
    stored = {}
    if st == 200:
        for r in json.loads(body)["data"]["result"]:
            stored[int(r["metric"]["series"])] = int(float(r["value"][1]))
    lost = sum(max(0, acked[i] - stored.get(i, 0)) for i in range(a.series))
    extra = sum(max(0, stored.get(i, 0) - acked[i]) for i in range(a.series))
    impossible = sum(max(0, stored.get(i, 0) - attempted[i]) for i in range(a.series))
    final_rss = srv.rss_kb()
    srv.stop(signal.SIGTERM)

    # RSS: the head is stable once the last restart has replayed and one more third has passed.
    last_restart = max((e["t_s"] for e in events), default=0)
    stable_from = last_restart + (a.minutes * 60 - last_restart) / 3
    stable = [r for r in rss_rows if r[0] >= stable_from]
    growth = None
    if len(stable) >= 2:
        first = statistics.median(r[1] for r in stable[:max(1, len(stable) // 4)])
        last = statistics.median(r[1] for r in stable[-max(1, len(stable) // 4):])
        growth = (last - first) / first
    if a.rss_csv:
        with open(a.rss_csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "rss_kb"])
            w.writerows(rss_rows)
    result = {
        "minutes": a.minutes, "series": a.series, "interval_s": a.interval_s,
        "samples_per_s_target": round(a.series / a.interval_s, 1),
        "samples_attempted": sum(attempted), "samples_acked": write_stats["samples_acked"],
        "samples_stored": sum(stored.values()), "samples_lost": lost,
        "stored_unacked": extra, "stored_never_sent": impossible,
        "write": write_stats, "restarts": events,
        "queries": {"distinct": len(queries), "ok": len(query_lat), "errors": len(query_errors),
                    "p50_ms": round(1000 * percentile(query_lat, 50), 2) if query_lat else None,
                    "p99_ms": round(1000 * percentile(query_lat, 99), 2) if query_lat else None,
                    "max_ms": round(1000 * max(query_lat), 2) if query_lat else None,
                    "first_errors": query_errors[:5]},
        "rule_evaluation_failures": rule_failures["total"],
        "fatal": fatal,
        "rss_mb": {"samples": len(rss_rows),
                   "max": round(max((r[1] for r in rss_rows), default=0) / 1024, 1),
                   "stable_from_s": round(stable_from, 1),
                   "stable_first_mb": round(stable[0][1] / 1024, 1) if stable else None,
                   "stable_last_mb": round(stable[-1][1] / 1024, 1) if stable else None,
                   "growth_after_stable": round(growth, 4) if growth is not None else None,
                   "final": round(final_rss / 1024, 1) if final_rss else None},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    if a.keep:
        print(f"kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    bad = fatal or lost or impossible or query_errors or rule_failures["total"] or st != 200
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
