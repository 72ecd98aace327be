// Rules: rule groups from /api/v1/rules with each rule's health, last evaluation, evaluation
// duration and last error.
import { useState } from "preact/hooks";
import { get } from "../api";
import { Labels, useApi } from "../components/useApi";
import { formatAgo, formatSeconds } from "../format";
import { href } from "../router";

interface Rule {
  type: "alerting" | "recording";
  name: string;
  query: string;
  duration?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  health: string;
  lastError?: string;
  evaluationTime?: number;
  lastEvaluation?: string;
  state?: string;
  alerts?: unknown[];
}
interface Group {
  name: string;
  file: string;
  interval: number;
  rules: Rule[];
  evaluationTime?: number;
  lastEvaluation?: string;
}

function ago(ts?: string): string {
  if (!ts || ts.startsWith("0001")) return "never";
  return formatAgo(Date.parse(ts) / 1000);
}

export function Rules() {
  const [filter, setFilter] = useState("");
  const res = useApi(() => get<{ groups: Group[] }>("/api/v1/rules"), [], 30000);
  const groups = (res.data?.groups ?? [])
    .map((g) => ({ ...g, rules: g.rules.filter((r) => !filter || r.name.toLowerCase().includes(filter.toLowerCase()) || g.name.toLowerCase().includes(filter.toLowerCase())) }))
    .filter((g) => g.rules.length > 0);
  const bad = (res.data?.groups ?? []).flatMap((g) => g.rules).filter((r) => r.health !== "ok").length;
  return (
    <section class="page rules">
      <div class="toolbar">
        <h1 style={{ margin: 0 }}>Rules</h1>
        {res.data && <span class={`badge ${bad ? "err" : "ok"}`}>{bad ? `${bad} unhealthy` : "all healthy"}</span>}
        <span class="spacer" />
        <input name="filter" placeholder="Filter by group or rule name" size={30} value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        <button onClick={res.reload}>↻</button>
      </div>
      {res.error && <p class="error">Cannot load rules: {res.error}</p>}
      {res.data && groups.length === 0 && <div class="card empty">No rules{filter ? " match" : " are loaded"}.</div>}
      {groups.map((g) => (
        <div class="card rule-group">
          <div class="row-flex">
            <h2 style={{ margin: 0 }}>{g.name}</h2>
            <span class="muted">{g.file} · every {g.interval}s · last evaluation {ago(g.lastEvaluation)}{g.evaluationTime !== undefined ? ` · took ${formatSeconds(g.evaluationTime)}` : ""}</span>
          </div>
          <table class="data">
            <thead>
              <tr><th>Rule</th><th>Health</th><th>Last evaluation</th><th>Duration</th></tr>
            </thead>
            <tbody>
              {g.rules.map((r) => (
                <tr>
                  <td>
                    <div>
                      <span class="muted">{r.type === "alerting" ? "alert: " : "record: "}</span>
                      <strong>{r.name}</strong>
                      {r.state && r.state !== "inactive" && <span class={`badge ${r.state}`} style={{ marginLeft: "6px" }}>{r.state}</span>}
                    </div>
                    <a class="mono" href={href("explore", [], { expr: r.query })}>{r.query}</a>
                    {r.duration ? <div class="muted">for {r.duration}s</div> : null}
                    {r.labels && Object.keys(r.labels).length > 0 && <div><Labels labels={r.labels} /></div>}
                    {r.lastError && <div class="error">{r.lastError}</div>}
                  </td>
                  <td><span class={`badge ${r.health === "ok" ? "ok" : r.health === "err" ? "err" : "unknown"}`}>{r.health}</span></td>
                  <td>{ago(r.lastEvaluation)}</td>
                  <td class="num">{r.evaluationTime !== undefined ? formatSeconds(r.evaluationTime) : "-"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </section>
  );
}
