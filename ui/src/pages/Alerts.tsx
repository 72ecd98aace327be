// Alerts: the firing and pending alerts of the rule engine (/api/v1/alerts) with labels,
// annotations, active-since and value; a text/matcher filter; "Silence" opens the silence form
// prefilled with the alert's labels.
import { useState } from "preact/hooks";
import { get } from "../api";
import { Labels, useApi } from "../components/useApi";
import { formatAgo } from "../format";
import { href } from "../router";
import { formatDateTime } from "../time";

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "firing" | "pending" | "inactive";
  activeAt?: string;
  value?: string;
}

/** True when every "name=value" / "name=~regex" / free-text word of `filter` matches the alert. */
export function matchesFilter(labels: Record<string, string>, filter: string): boolean {
  const words = filter.match(/[^\s,{}]+="[^"]*"|[^\s,{}]+/g) ?? [];
  return words.every((w) => {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)"?(.*?)"?$/.exec(w);
    if (!m) return Object.entries(labels).some(([k, v]) => k.includes(w) || v.toLowerCase().includes(w.toLowerCase()));
    const [, name, op, val] = m;
    const v = labels[name] ?? "";
    switch (op) {
      case "=":
        return v === val;
      case "!=":
        return v !== val;
      default: {
        let re: RegExp;
        try {
          re = new RegExp(`^(?:${val})$`);
        } catch {
          return false;
        }
        return op === "=~" ? re.test(v) : !re.test(v);
      }
    }
  });
}

/** Link to the silence form with matchers taken from the labels. */
export function silenceLink(labels: Record<string, string>): string {
  const p = new URLSearchParams();
  for (const k of Object.keys(labels).sort()) if (k !== "__name__") p.append("matcher", `${k}=${JSON.stringify(labels[k])}`);
  return href("silences", ["new"], p);
}

export function Alerts() {
  const [filter, setFilter] = useState("");
  const [show, setShow] = useState({ firing: true, pending: true });
  const res = useApi(() => get<{ alerts: PromAlert[] }>("/api/v1/alerts"), [], 15000);
  const alerts = (res.data?.alerts ?? [])
    .filter((a) => (a.state === "firing" ? show.firing : a.state === "pending" ? show.pending : false))
    .filter((a) => matchesFilter(a.labels, filter))
    .sort((a, b) => (a.state === b.state ? (a.labels.alertname ?? "").localeCompare(b.labels.alertname ?? "") : a.state === "firing" ? -1 : 1));
  const count = (s: string) => (res.data?.alerts ?? []).filter((a) => a.state === s).length;
  return (
    <section class="page alerts">
      <div class="toolbar">
        <h1 style={{ margin: 0 }}>Alerts</h1>
        <span class="badge firing">{count("firing")} firing</span>
        <span class="badge pending">{count("pending")} pending</span>
        <span class="spacer" />
        <input name="filter" placeholder='Filter: alertname="X" severity=~"crit.*" text' size={40} value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        <label class="row-flex"><input type="checkbox" checked={show.firing} onChange={() => setShow({ ...show, firing: !show.firing })} /> Firing</label>
        <label class="row-flex"><input type="checkbox" checked={show.pending} onChange={() => setShow({ ...show, pending: !show.pending })} /> Pending</label>
        <button onClick={res.reload}>↻</button>
      </div>
      {res.error && <p class="error">Cannot load alerts: {res.error}</p>}
      {res.data && alerts.length === 0 && <div class="card empty">No {filter ? "matching " : ""}firing or pending alerts.</div>}
      {alerts.map((a) => (
        <div class="card alert-card">
          <div class="row-flex">
            <span class={`badge ${a.state}`}>{a.state}</span>
            <strong>{a.labels.alertname ?? "(no alertname)"}</strong>
            <span class="spacer" style={{ flex: 1 }} />
            {a.activeAt && <span class="muted" title={a.activeAt}>active since {formatDateTime(Date.parse(a.activeAt) / 1000)} ({formatAgo(Date.parse(a.activeAt) / 1000)})</span>}
            <a href={silenceLink(a.labels)}><button>Silence</button></a>
          </div>
          <div style={{ margin: "6px 0" }}><Labels labels={a.labels} skip={["alertname"]} /></div>
          {a.value !== undefined && <div class="muted">value: <span class="mono">{a.value}</span></div>}
          {Object.keys(a.annotations ?? {}).length > 0 && (
            <dl class="kv">
              {Object.entries(a.annotations).map(([k, v]) => (
                <>
                  <dt>{k}</dt>
                  <dd>{v}</dd>
                </>
              ))}
            </dl>
          )}
        </div>
      ))}
    </section>
  );
}
