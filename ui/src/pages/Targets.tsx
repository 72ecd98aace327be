// Targets: scrape targets from /api/v1/targets grouped by scrape pool, with health, last error,
// last scrape and its duration, and the target labels.
import { useState } from "preact/hooks";
import { get } from "../api";
import { Labels, useApi } from "../components/useApi";
import { formatAgo, formatSeconds } from "../format";

interface Target {
  discoveredLabels: Record<string, string>;
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  lastError: string;
  lastScrape: string;
  lastScrapeDuration: number;
  health: "up" | "down" | "unknown";
  scrapeInterval?: string;
}

export function Targets() {
  const [filter, setFilter] = useState("");
  const [onlyDown, setOnlyDown] = useState(false);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const res = useApi(() => get<{ activeTargets: Target[]; droppedTargets?: unknown[] }>("/api/v1/targets", { state: "active" }), [], 15000);
  const pools = new Map<string, Target[]>();
  for (const t of res.data?.activeTargets ?? []) {
    if (onlyDown && t.health === "up") continue;
    const hay = `${t.scrapeUrl} ${Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(" ")}`.toLowerCase();
    if (filter && !hay.includes(filter.toLowerCase())) continue;
    if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
    pools.get(t.scrapePool)!.push(t);
  }
  return (
    <section class="page targets">
      <div class="toolbar">
        <h1 style={{ margin: 0 }}>Targets</h1>
        <span class="spacer" />
        <input name="filter" placeholder="Filter by endpoint or labels" size={30} value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        <label class="row-flex"><input type="checkbox" checked={onlyDown} onChange={() => setOnlyDown(!onlyDown)} /> Unhealthy only</label>
        <button onClick={res.reload}>↻</button>
      </div>
      {res.error && <p class="error">Cannot load targets: {res.error}</p>}
      {res.data && pools.size === 0 && <div class="card empty">No {filter || onlyDown ? "matching " : ""}scrape targets. Add <span class="mono">scrape_configs</span> to sextant.yml.</div>}
      {[...pools.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([pool, ts]) => {
        const up = ts.filter((t) => t.health === "up").length;
        const open = !collapsed.has(pool);
        return (
          <div class="card target-pool" data-pool={pool}>
            <div class="row-flex" style={{ cursor: "pointer" }} onClick={() => { const n = new Set(collapsed); open ? n.add(pool) : n.delete(pool); setCollapsed(n); }}>
              <span>{open ? "▾" : "▸"}</span>
              <h2 style={{ margin: 0 }}>{pool}</h2>
              <span class={`badge ${up === ts.length ? "up" : "down"}`}>{up}/{ts.length} up</span>
            </div>
            {open && (
              <table class="data">
                <thead>
                  <tr><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Error</th></tr>
                </thead>
                <tbody>
                  {ts.map((t) => (
                    <tr>
                      <td class="mono"><a href={t.scrapeUrl} target="_blank" rel="noreferrer">{t.scrapeUrl}</a></td>
                      <td><span class={`badge ${t.health}`}>{t.health}</span></td>
                      <td><Labels labels={t.labels} /></td>
                      <td title={t.lastScrape}>{t.lastScrape && !t.lastScrape.startsWith("0001") ? formatAgo(Date.parse(t.lastScrape) / 1000) : "never"}</td>
                      <td class="num">{t.lastScrapeDuration ? formatSeconds(t.lastScrapeDuration) : "-"}</td>
                      <td class="error">{t.lastError}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        );
      })}
    </section>
  );
}
