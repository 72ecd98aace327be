// Explore: ad-hoc PromQL over a time range. Several queries (A, B, …) share one graph; the table
// tab runs them as instant queries at the end of the range; the JSON tab shows the raw answers.
// Everything lives in the URL (#/explore?expr=…&expr=…&from=…&to=…&step=…&tab=…) so links from
// dashboard panels and browser history work.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, ApiResponse, QueryData, queryInstant, queryRange } from "../api";
import { Graph, alignSeries } from "../components/Graph";
import { ErrorPos, QueryEditor, errorPosition } from "../components/QueryEditor";
import { TimePicker } from "../components/TimePicker";
import { formatShort, seriesName } from "../format";
import { replaceParams } from "../router";
import { DEFAULT_RANGE, TimeRange, autoStep, formatDateTime, formatDuration, parseDuration, resolveRange } from "../time";

type Tab = "graph" | "table" | "json";

interface QueryState {
  expr: string;
  hidden: boolean;
}

interface QueryResult {
  response?: ApiResponse<QueryData>;
  error?: string;
  errorPos?: ErrorPos | null;
  /** Round-trip time in milliseconds. */
  ms: number;
  /** The resolved step for range queries. */
  step?: number;
}

const REFS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

function parseNum(s: string | null): number | undefined {
  if (s === null || s === "") return undefined;
  const n = Number(s);
  return isFinite(n) ? n : undefined;
}

/** Number of series and of samples (points) in an answer, counted client-side. */
function countResult(d: QueryData | undefined): { series: number; points: number } {
  if (!d) return { series: 0, points: 0 };
  switch (d.resultType) {
    case "matrix":
      return { series: d.result.length, points: d.result.reduce((a, s) => a + (s.values?.length ?? 0) + (s.histograms?.length ?? 0), 0) };
    case "vector":
      return { series: d.result.length, points: d.result.length };
    default:
      return { series: 1, points: 1 };
  }
}

export function Explore({ params }: { params: URLSearchParams }) {
  const initial = useMemo(() => {
    const exprs = params.getAll("expr");
    return {
      queries: (exprs.length ? exprs : [""]).map((e) => ({ expr: e, hidden: false })),
      range: { from: params.get("from") ?? DEFAULT_RANGE.from, to: params.get("to") ?? DEFAULT_RANGE.to },
      step: params.get("step") ?? "",
      tab: (["graph", "table", "json"].includes(params.get("tab") ?? "") ? params.get("tab") : "graph") as Tab,
      stack: params.get("stack") === "1",
      log: parseNum(params.get("log")) ?? 0,
      refresh: params.get("refresh") ?? "",
    };
  }, []);
  const [queries, setQueries] = useState<QueryState[]>(initial.queries);
  const [range, setRange] = useState<TimeRange>(initial.range);
  const [step, setStep] = useState(initial.step);
  const [tab, setTab] = useState<Tab>(initial.tab);
  const [stack, setStack] = useState(initial.stack);
  const [log, setLog] = useState(initial.log);
  const [refresh, setRefresh] = useState(initial.refresh);
  const [results, setResults] = useState<QueryResult[]>([]);
  const [loading, setLoading] = useState(false);
  const [rangeErr, setRangeErr] = useState("");
  const [ranAt, setRanAt] = useState<[number, number] | null>(null);
  const runId = useRef(0);
  const latest = useRef({ queries, range, step, tab });
  latest.current = { queries, range, step, tab };

  const saveUrl = () => {
    const p = new URLSearchParams();
    for (const q of latest.current.queries) p.append("expr", q.expr);
    p.set("from", range.from);
    p.set("to", range.to);
    if (step) p.set("step", step);
    if (tab !== "graph") p.set("tab", tab);
    if (stack) p.set("stack", "1");
    if (log) p.set("log", String(log));
    if (refresh) p.set("refresh", refresh);
    replaceParams(p);
  };

  const run = async () => {
    const { queries, range, step, tab } = latest.current;
    const id = ++runId.current;
    let start: number, end: number;
    try {
      [start, end] = resolveRange(range);
      setRangeErr("");
    } catch (e) {
      setRangeErr((e as Error).message);
      return;
    }
    let stepSec = autoStep(start, end);
    if (step) {
      const s = parseDuration(step) ?? parseNum(step) ?? null;
      if (s === null || s <= 0) {
        setRangeErr(`invalid step: ${step}`);
        return;
      }
      stepSec = s;
    }
    setLoading(true);
    const out = await Promise.all(
      queries.map(async (q): Promise<QueryResult> => {
        if (q.expr.trim() === "" || q.hidden) return { ms: 0 };
        const t0 = performance.now();
        try {
          const response =
            tab === "table"
              ? await queryInstant(q.expr, end, { stats: "all" })
              : await queryRange(q.expr, start, end, stepSec, { stats: "all" });
          return { response, ms: performance.now() - t0, step: stepSec };
        } catch (e) {
          const msg = e instanceof ApiError ? `${e.errorType}: ${e.message}` : String(e);
          return { error: msg, errorPos: e instanceof ApiError ? errorPosition(e.message) : null, ms: performance.now() - t0 };
        }
      }),
    );
    if (id !== runId.current) return;
    setResults(out);
    setRanAt([start, end]);
    setLoading(false);
  };

  // Run on load and whenever range, step or tab change; save the URL each time.
  useEffect(() => {
    saveUrl();
    if (queries.some((q) => q.expr.trim() !== "")) run();
  }, [range, step, tab]);
  useEffect(saveUrl, [stack, log, refresh, queries]);

  useEffect(() => {
    const sec = refresh ? parseDuration(refresh) : null;
    if (!sec) return;
    const t = setInterval(run, sec * 1000);
    return () => clearInterval(t);
  }, [refresh]);

  const setExpr = (i: number, expr: string) => setQueries((qs) => qs.map((q, k) => (k === i ? { ...q, expr } : q)));

  const graph = useMemo(() => {
    const input: { name: string; points: [number, number | null][] }[] = [];
    const multi = queries.length > 1;
    results.forEach((r, qi) => {
      const d = r.response?.data;
      if (!d || d.resultType !== "matrix") return;
      for (const s of d.result) {
        const name = seriesName(s.metric);
        input.push({
          name: multi ? `${REFS[qi]}: ${name}` : name,
          points: (s.values ?? []).map(([t, v]) => [t, parseFloat(v)] as [number, number]),
        });
      }
    });
    return alignSeries(input);
  }, [results]);

  return (
    <section class="page explore">
      <div class="toolbar">
        <h1 style={{ margin: 0 }}>Explore</h1>
        <span class="spacer" />
        <label class="row-flex">
          Step
          <input
            name="step"
            placeholder={ranAt ? `auto (${formatDuration(results.find((r) => r.step)?.step ?? 0)})` : "auto"}
            size={10}
            value={step}
            onChange={(e) => setStep((e.target as HTMLInputElement).value.trim())}
          />
        </label>
        <TimePicker value={range} onChange={setRange} refresh={refresh} onRefreshChange={setRefresh} onRefresh={run} />
        <button class="primary" data-testid="run" onClick={run} disabled={loading}>
          {loading ? "Running…" : "Run query"}
        </button>
      </div>
      {rangeErr && <p class="error">{rangeErr}</p>}
      {queries.map((q, i) => {
        const r = results[i];
        const c = countResult(r?.response?.data);
        const samples = r?.response?.stats?.samples?.totalQueryableSamples;
        return (
          <div class="card query-row" data-ref={REFS[i]}>
            <div class="row-flex">
              <strong class="ref">{REFS[i]}</strong>
              <QueryEditor value={q.expr} onChange={(v) => setExpr(i, v)} onRun={run} error={r?.errorPos} autofocus={i === 0} />
              <button title={q.hidden ? "Enable query" : "Disable query"} onClick={() => setQueries((qs) => qs.map((x, k) => (k === i ? { ...x, hidden: !x.hidden } : x)))}>
                {q.hidden ? "◌" : "●"}
              </button>
              {queries.length > 1 && (
                <button title="Remove query" onClick={() => setQueries((qs) => qs.filter((_, k) => k !== i))}>✕</button>
              )}
            </div>
            {r?.error && (
              <p class="error query-error">
                {r.errorPos ? `Error at line ${r.errorPos.line}, column ${r.errorPos.col}: ` : ""}
                {r.error}
              </p>
            )}
            {r?.response && (
              <p class="hint query-stats">
                {c.series} series · {c.points} points returned
                {samples !== undefined ? ` · ${samples} samples queried` : ""} · {r.ms.toFixed(0)} ms
                {r.response.warnings?.map((w) => <span class="warn"> · ⚠ {w}</span>)}
                {r.response.infos?.map((w) => <span> · ℹ {w}</span>)}
              </p>
            )}
          </div>
        );
      })}
      <div class="toolbar">
        <button onClick={() => setQueries((qs) => [...qs, { expr: "", hidden: false }])} disabled={queries.length >= REFS.length}>
          + Add query
        </button>
      </div>
      <div class="tabs">
        {(["graph", "table", "json"] as Tab[]).map((t) => (
          <button class={tab === t ? "active" : ""} data-tab={t} onClick={() => setTab(t)}>
            {t === "graph" ? "Graph" : t === "table" ? "Table" : "JSON"}
          </button>
        ))}
        <span style={{ flex: 1 }} />
        {tab === "graph" && (
          <>
            <label class="row-flex"><input type="checkbox" checked={stack} onChange={(e) => setStack((e.target as HTMLInputElement).checked)} /> Stack</label>
            <label class="row-flex">
              Scale
              <select value={String(log)} onChange={(e) => setLog(Number((e.target as HTMLSelectElement).value))}>
                <option value="0">Linear</option>
                <option value="10">Log 10</option>
                <option value="2">Log 2</option>
              </select>
            </label>
          </>
        )}
      </div>
      {tab === "graph" && (
        <div class="card">
          <Graph
            timestamps={graph.timestamps}
            series={graph.series}
            stack={stack}
            log={log}
            height={360}
            onZoom={(from, to) => setRange({ from: String(from), to: String(to) })}
          />
        </div>
      )}
      {tab === "table" && <ResultTable results={results} queries={queries} at={ranAt?.[1]} />}
      {tab === "json" && (
        <pre class="json" data-testid="raw-json">
          {JSON.stringify(results.map((r) => r.response ?? { error: r.error }), null, 2)}
        </pre>
      )}
    </section>
  );
}

function ResultTable({ results, queries, at }: { results: QueryResult[]; queries: QueryState[]; at?: number }) {
  const rows: { ref: string; name: string; value: string; ts?: number }[] = [];
  results.forEach((r, i) => {
    const d = r.response?.data;
    if (!d) return;
    const ref = REFS[i];
    if (d.resultType === "vector") {
      for (const s of d.result) rows.push({ ref, name: seriesName(s.metric), value: s.value ? s.value[1] : s.histogram ? "(histogram)" : "", ts: s.value?.[0] });
    } else if (d.resultType === "scalar" || d.resultType === "string") {
      rows.push({ ref, name: `(${d.resultType})`, value: d.result[1], ts: d.result[0] });
    } else {
      for (const s of d.result) rows.push({ ref, name: seriesName(s.metric), value: s.values?.length ? s.values[s.values.length - 1][1] : "", ts: s.values?.[s.values.length - 1]?.[0] });
    }
  });
  return (
    <div class="card">
      {at !== undefined && <p class="hint">Instant query at {formatDateTime(at)}</p>}
      {rows.length === 0 ? (
        <div class="empty">No data</div>
      ) : (
        <table class="data result-table">
          <thead>
            <tr>{queries.length > 1 && <th>Query</th>}<th>Series</th><th style={{ textAlign: "right" }}>Value</th></tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr>
                {queries.length > 1 && <td>{r.ref}</td>}
                <td class="mono">{r.name}</td>
                <td class="num mono" title={r.value}>{isFinite(Number(r.value)) && r.value !== "" ? formatExact(r.value) : r.value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** Values in the table keep full precision; only very long fractions are shortened. */
function formatExact(v: string): string {
  return v.length > 20 ? formatShort(Number(v)) : v;
}
