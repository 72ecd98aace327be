// Turning query results into what panels draw: series names from legend templates, reductions
// (last/mean/max/…), aligned columns for uPlot, rows for tables, and heatmap cells from classic
// `le` buckets or native histograms.
import type { Labels, MatrixSeries, QueryData, VectorSample } from "../api";
import type { Reduce } from "./model";

/** One series ready for drawing: name, timestamps (s) and values (null = gap). */
export interface Series { name: string; labels: Labels; ref: string; times: number[]; values: (number | null)[] }

/** Prometheus' default series name: `name{a="b", c="d"}`. */
export function defaultName(labels: Labels): string {
  const { __name__: name = "", ...rest } = labels;
  const inner = Object.keys(rest).sort().map((k) => `${k}="${rest[k]}"`).join(", ");
  return inner || !name ? `${name}{${inner}}` : name;
}

/** Applies a legend template like "{{instance}} {{ job }}"; empty template → default name. */
export function seriesName(labels: Labels, legend?: string): string {
  if (!legend) return defaultName(labels);
  return legend.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, k: string) => labels[k] ?? "");
}

export function parseValue(v: string): number {
  if (v === "+Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  return Number(v);
}

/** Converts a query response to named series (vector/scalar → one point each). */
export function toSeries(data: QueryData, legend = "", ref = ""): Series[] {
  switch (data.resultType) {
    case "matrix":
      return data.result.map((s: MatrixSeries) => ({
        name: seriesName(s.metric, legend),
        labels: s.metric,
        ref,
        times: (s.values ?? []).map((p) => p[0]),
        values: (s.values ?? []).map((p) => parseValue(p[1])),
      }));
    case "vector":
      return data.result.filter((s: VectorSample) => s.value).map((s: VectorSample) => ({
        name: seriesName(s.metric, legend),
        labels: s.metric,
        ref,
        times: [s.value![0]],
        values: [parseValue(s.value![1])],
      }));
    case "scalar":
      return [{ name: legend || "scalar", labels: {}, ref, times: [data.result[0]], values: [parseValue(data.result[1])] }];
    default:
      return [];
  }
}

/** Reduces a series' values to one number (nulls and NaN are skipped). */
export function reduce(values: (number | null)[], how: Reduce | string = "last"): number | null {
  const v = values.filter((x): x is number => x !== null && !isNaN(x));
  if (how === "count") return v.length;
  if (v.length === 0) return null;
  switch (how) {
    case "first": return v[0];
    case "min": return Math.min(...v);
    case "max": return Math.max(...v);
    case "sum": return v.reduce((a, b) => a + b, 0);
    case "mean": case "avg": return v.reduce((a, b) => a + b, 0) / v.length;
    case "lastNotNull": case "last": default: return v[v.length - 1];
  }
}

/**
 * Aligns series on one shared, sorted time axis for uPlot: [times, ...values] with null where a
 * series has no sample at a time.
 */
export function align(series: Series[]): [number[], ...(number | null)[][]] {
  const set = new Set<number>();
  for (const s of series) for (const t of s.times) set.add(t);
  const times = [...set].sort((a, b) => a - b);
  const pos = new Map(times.map((t, i) => [t, i]));
  const cols = series.map((s) => {
    const col: (number | null)[] = new Array(times.length).fill(null);
    s.times.forEach((t, i) => (col[pos.get(t)!] = s.values[i]));
    return col;
  });
  return [times, ...cols];
}

/** Stacks aligned columns: each column becomes the running sum (nulls count as 0 below). */
export function stack(cols: (number | null)[][]): (number | null)[][] {
  const acc: number[] = [];
  return cols.map((c) =>
    c.map((v, i) => {
      acc[i] = (acc[i] ?? 0) + (v ?? 0);
      return v === null ? null : acc[i];
    }),
  );
}

export interface Table { columns: string[]; rows: (string | number | null)[][] }

/**
 * Converts results of one or more targets into a table. Instant (and range, by each series' last
 * value when `lastOnly`) results are joined by label set: one row per series, a column per label
 * and a "Value" column per target ("Value #A" when there are several). Range results otherwise
 * give one row per sample with a Time column.
 */
export function seriesToTable(targets: { ref: string; series: Series[] }[], lastOnly = true, maxRows = 5000): Table {
  const labelKeys = new Set<string>();
  for (const t of targets) for (const s of t.series) for (const k of Object.keys(s.labels)) labelKeys.add(k);
  // Several queries are joined on their labels; their metric names differ, so __name__ is dropped.
  if (targets.length > 1) labelKeys.delete("__name__");
  const keys = [...labelKeys].sort((a, b) => (a === "__name__" ? -1 : b === "__name__" ? 1 : a.localeCompare(b)));
  const valueCols = targets.length > 1 ? targets.map((t) => `Value #${t.ref}`) : ["Value"];
  if (lastOnly) {
    const rows = new Map<string, (string | number | null)[]>();
    targets.forEach((t, ti) => {
      for (const s of t.series) {
        const id = JSON.stringify(keys.map((k) => s.labels[k] ?? ""));
        let row = rows.get(id);
        if (!row) {
          row = [s.times.length ? s.times[s.times.length - 1] : null, ...keys.map((k) => s.labels[k] ?? ""), ...valueCols.map(() => null)];
          rows.set(id, row);
        }
        row[1 + keys.length + ti] = reduce(s.values, "last");
      }
    });
    return { columns: ["Time", ...keys, ...valueCols], rows: [...rows.values()].slice(0, maxRows) };
  }
  const rows: (string | number | null)[][] = [];
  targets.forEach((t, ti) => {
    for (const s of t.series) {
      for (let i = 0; i < s.times.length && rows.length < maxRows; i++) {
        const vals = valueCols.map((_, j) => (j === ti ? s.values[i] : null));
        rows.push([s.times[i], ...keys.map((k) => s.labels[k] ?? ""), ...vals]);
      }
    }
  });
  return { columns: ["Time", ...keys, ...valueCols], rows };
}

/** Heatmap cells: bucket bounds (lower, upper) and counts[bucket][time]. */
export interface Heatmap { times: number[]; buckets: { lower: number; upper: number }[]; counts: number[][] }

/**
 * Classic histogram buckets: series that differ by `le` (typically `sum by (le) (rate(x_bucket[…]))`)
 * are cumulative; per-bucket counts are the differences of neighbouring `le`s (never negative).
 */
export function classicHeatmap(series: Series[]): Heatmap {
  const withLe = series.filter((s) => s.labels.le !== undefined && !isNaN(parseValue(s.labels.le)));
  // Several series per `le` (not aggregated): add them up.
  const byLe = new Map<number, Series[]>();
  for (const s of withLe) {
    const le = parseValue(s.labels.le);
    byLe.set(le, [...(byLe.get(le) ?? []), s]);
  }
  const les = [...byLe.keys()].sort((a, b) => a - b);
  const [times] = align(withLe);
  const pos = new Map(times.map((t, i) => [t, i]));
  const cum = les.map((le) => {
    const col = new Array(times.length).fill(0);
    for (const s of byLe.get(le)!) s.times.forEach((t, i) => (col[pos.get(t)!] += s.values[i] ?? 0));
    return col;
  });
  const counts = cum.map((col, b) => col.map((v, i) => Math.max(0, b === 0 ? v : v - cum[b - 1][i])));
  const buckets = les.map((le, b) => ({ lower: b === 0 ? (le > 0 ? 0 : -Infinity) : les[b - 1], upper: le }));
  return { times, buckets, counts };
}

/** A native histogram as returned by the query API: buckets are [boundaryRule, lower, upper, count]. */
export interface NativeHistogram { count: string; sum: string; buckets?: [number, string, string, string][] }

/** Native histograms from a range query's `histograms`: one row per distinct bucket, summed over series. */
export function nativeHeatmap(result: MatrixSeries[]): Heatmap {
  const timeSet = new Set<number>();
  const bucketKey = new Map<string, { lower: number; upper: number }>();
  for (const s of result) {
    for (const [t, h] of s.histograms ?? []) {
      timeSet.add(t);
      for (const b of (h as NativeHistogram).buckets ?? []) {
        const k = `${b[1]}|${b[2]}`;
        if (!bucketKey.has(k)) bucketKey.set(k, { lower: parseValue(b[1]), upper: parseValue(b[2]) });
      }
    }
  }
  const times = [...timeSet].sort((a, b) => a - b);
  const tpos = new Map(times.map((t, i) => [t, i]));
  const keys = [...bucketKey.entries()].sort((a, b) => a[1].lower - b[1].lower || a[1].upper - b[1].upper);
  const bpos = new Map(keys.map(([k], i) => [k, i]));
  const counts = keys.map(() => new Array(times.length).fill(0));
  for (const s of result) {
    for (const [t, h] of s.histograms ?? []) {
      for (const b of (h as NativeHistogram).buckets ?? []) counts[bpos.get(`${b[1]}|${b[2]}`)!][tpos.get(t)!] += parseValue(b[3]);
    }
  }
  return { times, buckets: keys.map(([, v]) => v), counts };
}
