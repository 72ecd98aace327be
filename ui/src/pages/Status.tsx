// Status: build and runtime information and TSDB cardinality (/api/v1/status/tsdb): head
// statistics and the top metrics, label names and label pairs by series count.
import { get } from "../api";
import { useApi } from "../components/useApi";
import { formatDateTime } from "../time";

interface Stat { name: string; value: number }
interface TsdbStatus {
  headStats?: { numSeries: number; numLabelPairs?: number; chunkCount?: number; minTime?: number; maxTime?: number };
  seriesCountByMetricName?: Stat[];
  labelValueCountByLabelName?: Stat[];
  memoryInBytesByLabelName?: Stat[];
  seriesCountByLabelValuePair?: Stat[];
}

function Kv({ data }: { data?: Record<string, unknown> }) {
  if (!data) return <p class="muted">Loading…</p>;
  return (
    <dl class="kv">
      {Object.entries(data).map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd class="mono">{typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>
        </>
      ))}
    </dl>
  );
}

function StatTable({ title, rows, unit }: { title: string; rows?: Stat[]; unit: string }) {
  return (
    <div class="card stat-table">
      <h2 style={{ marginTop: 0 }}>{title}</h2>
      {!rows || rows.length === 0 ? (
        <div class="empty">None</div>
      ) : (
        <table class="data">
          <thead><tr><th>Name</th><th style={{ textAlign: "right" }}>{unit}</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr><td class="mono">{r.name}</td><td class="num">{r.value.toLocaleString()}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function time(ms?: number): string {
  return ms === undefined || !isFinite(ms) || Math.abs(ms) > 1e15 ? "-" : formatDateTime(ms / 1000);
}

export function Status() {
  const build = useApi(() => get<Record<string, unknown>>("/api/v1/status/buildinfo"));
  const runtime = useApi(() => get<Record<string, unknown>>("/api/v1/status/runtimeinfo"));
  const tsdb = useApi(() => get<TsdbStatus>("/api/v1/status/tsdb", { limit: "10" }));
  const h = tsdb.data?.headStats;
  return (
    <section class="page status">
      <h1>Status</h1>
      <div style={{ display: "grid", gridTemplateColumns: "1fr 1fr", gap: "12px" }}>
        <div class="card">
          <h2 style={{ marginTop: 0 }}>Build information</h2>
          {build.error ? <p class="error">{build.error}</p> : <Kv data={build.data} />}
        </div>
        <div class="card">
          <h2 style={{ marginTop: 0 }}>Runtime information</h2>
          {runtime.error ? <p class="error">{runtime.error}</p> : <Kv data={runtime.data} />}
        </div>
      </div>
      <div class="card">
        <h2 style={{ marginTop: 0 }}>TSDB head</h2>
        {tsdb.error && <p class="error">{tsdb.error}</p>}
        {h && (
          <dl class="kv head-stats">
            <dt>Series</dt><dd data-testid="num-series">{h.numSeries.toLocaleString()}</dd>
            {h.numLabelPairs !== undefined && <><dt>Label pairs</dt><dd>{h.numLabelPairs.toLocaleString()}</dd></>}
            {h.chunkCount !== undefined && <><dt>Chunks</dt><dd>{h.chunkCount.toLocaleString()}</dd></>}
            <dt>Min time</dt><dd>{time(h.minTime)}</dd>
            <dt>Max time</dt><dd>{time(h.maxTime)}</dd>
          </dl>
        )}
      </div>
      <div style={{ display: "grid", gridTemplateColumns: "1fr 1fr", gap: "12px" }}>
        <StatTable title="Top metrics by series" rows={tsdb.data?.seriesCountByMetricName} unit="Series" />
        <StatTable title="Top label names by value count" rows={tsdb.data?.labelValueCountByLabelName} unit="Values" />
        <StatTable title="Top label pairs by series" rows={tsdb.data?.seriesCountByLabelValuePair} unit="Series" />
        <StatTable title="Label names by memory" rows={tsdb.data?.memoryInBytesByLabelName} unit="Bytes" />
      </div>
    </section>
  );
}
