#!/usr/bin/env python3
"""Writes the rule-evaluation benchmark's rule file: N recording + N alerting rules over the
bench/loadgen agent-fleet workload, spread over G groups (no group interval: the global
evaluation interval applies). Deterministic; usage: gen.py [N_RECORD] [N_ALERT] [GROUPS]."""
import json
import sys

MODELS = ["claude-sonnet", "claude-haiku", "gpt-4o", "gpt-4o-mini", "llama-3-70b"]
TOOLS = ["bash", "read_file", "write_file", "search", "fetch", "edit", "grep", "python", "git", "test"]
STATUSES = ["ok", "error", "timeout"]
JOBS = ["agents-0", "agents-1", "agents-2", "agents-3"]

n_rec = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
n_alert = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
groups = int(sys.argv[3]) if len(sys.argv) > 3 else 20


def record(i):
    t, m, s, j = TOOLS[i % 10], MODELS[(i // 10) % 5], STATUSES[(i // 50) % 3], JOBS[i % 4]
    k = i % 4
    if k == 0:
        e = f'sum by (job, model) (rate(agent_tool_calls_total{{tool="{t}", status="{s}"}}[5m]))'
    elif k == 1:
        e = f'histogram_quantile(0.9, sum by (le, job) (rate(agent_tool_duration_seconds_bucket{{model="{m}", tool="{t}"}}[5m])))'
    elif k == 2:
        e = f'avg by (job, tool) (agent_context_fill_percent{{model="{m}"}})'
    else:
        e = f'sum by (model) (increase(agent_tokens_total{{job="{j}", tool="{t}"}}[5m]))'
    return {"record": f"bench_r{i}:agent:summary", "expr": e}


def alert(i):
    t, m, j = TOOLS[i % 10], MODELS[(i // 10) % 5], JOBS[i % 4]
    k = i % 3
    if k == 0:
        e = f'sum by (job, instance) (rate(agent_tool_calls_total{{status="error", tool="{t}", model="{m}"}}[5m])) > 0.05'
        f = "0s"
    elif k == 1:
        e = f'avg by (job, model) (agent_context_fill_percent{{tool="{t}"}}) > 50'
        f = "1m"
    else:
        e = f'histogram_quantile(0.99, sum by (le, model) (rate(agent_tool_duration_seconds_bucket{{tool="{t}", job="{j}"}}[5m]))) > 2'
        f = "5m"
    return {
        "alert": f"BenchAlert{i}",
        "expr": e,
        "for": f,
        "labels": {"severity": ["P0", "P1", "P2", "P3"][i % 4]},
        "annotations": {"summary": "{{ $labels.job }} value {{ $value | humanize }}"},
    }


rules = [record(i) for i in range(n_rec)] + [alert(i) for i in range(n_alert)]
out = ["groups:"]
per = -(-len(rules) // groups)
for g in range(groups):
    chunk = rules[g * per:(g + 1) * per]
    if not chunk:
        break
    out.append(f"  - name: bench-{g:02d}")
    out.append("    rules:")
    for r in chunk:
        first = True
        for k, v in r.items():
            lead = "      - " if first else "        "
            first = False
            if isinstance(v, dict):
                out.append(f"{lead}{k}:")
                for kk, vv in v.items():
                    out.append(f"          {kk}: {json.dumps(vv)}")
            else:
                out.append(f"{lead}{k}: {json.dumps(v)}")
print("\n".join(out))
