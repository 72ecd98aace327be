// The time-series chart used by Explore and dashboard panels: a thin Preact wrapper around uPlot
// with our own legend (click toggles a series, Ctrl/Shift-click isolates it), a cursor tooltip
// listing every visible series' value, optional stacking, log scales and unit-aware axes. It
// follows its container's width (ResizeObserver), so panels can be resized freely.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatShort } from "../format";
import { formatDateTime } from "../time";

/** One line on the chart; `values` are aligned to the graph's `timestamps` (null = gap). */
export interface GraphSeries {
  name: string;
  values: (number | null)[];
  color?: string;
  /** Initially hidden (e.g. a dashboard override). */
  hidden?: boolean;
}

export interface GraphProps {
  /** Unix seconds, ascending, shared by all series. */
  timestamps: number[];
  series: GraphSeries[];
  /** Formats y values on the axis, the legend and the tooltip. */
  format?: (v: number) => string;
  stack?: boolean;
  /** 0 = linear, 2 or 10 = logarithmic with that base. */
  log?: number;
  height?: number;
  min?: number;
  max?: number;
  /** Legend under the chart (default), to the right, or none. */
  legend?: "bottom" | "right" | "none";
  /** Extra legend columns computed over each series. */
  legendCalcs?: ("mean" | "max" | "min" | "last" | "first" | "sum")[];
  /** Fill opacity 0..1 under lines (stacked charts always fill). */
  fill?: number;
  /** Called with [from, to] unix seconds after the user drag-selects a range. */
  onZoom?: (from: number, to: number) => void;
  /** Called once after every draw; dashboards count drawn panels with it. */
  onDraw?: () => void;
}

/** Grafana's classic palette, readable on a dark background. */
export const PALETTE = [
  "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
  "#508642", "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477",
  "#b7dbab", "#f4d598", "#70dbed", "#f9ba8f", "#f29191", "#82b5d8", "#e5a8e2", "#aea2e0",
];

export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length];
}

/**
 * Aligns series with their own timestamps onto one sorted x axis (union of all timestamps).
 * Query results of one range query already share the grid; several queries may not.
 */
export function alignSeries(input: { name: string; points: [number, number | null][] }[]): {
  timestamps: number[];
  series: GraphSeries[];
} {
  const ts = new Set<number>();
  for (const s of input) for (const [t] of s.points) ts.add(t);
  const timestamps = [...ts].sort((a, b) => a - b);
  const idx = new Map(timestamps.map((t, i) => [t, i]));
  const series = input.map((s) => {
    const values: (number | null)[] = new Array(timestamps.length).fill(null);
    for (const [t, v] of s.points) values[idx.get(t)!] = v;
    return { name: s.name, values };
  });
  return { timestamps, series };
}

function calc(kind: string, vals: (number | null)[]): number | null {
  const xs = vals.filter((v): v is number => v !== null && isFinite(v));
  if (xs.length === 0) return null;
  switch (kind) {
    case "mean":
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    case "max":
      return Math.max(...xs);
    case "min":
      return Math.min(...xs);
    case "first":
      return xs[0];
    case "sum":
      return xs.reduce((a, b) => a + b, 0);
    default:
      return xs[xs.length - 1];
  }
}

function alpha(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

export function Graph(props: GraphProps) {
  const { timestamps, series, format = formatShort, stack = false, log = 0, height = 300 } = props;
  const legend = props.legend ?? "bottom";
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [hidden, setHidden] = useState<Set<number>>(() => new Set(series.flatMap((s, i) => (s.hidden ? [i] : []))));
  const names = series.map((s) => s.name).join("\u0000");
  // Reset toggles when the set of series changes.
  useEffect(() => setHidden(new Set(series.flatMap((s, i) => (s.hidden ? [i] : [])))), [names]);

  const colors = useMemo(() => series.map((s, i) => s.color ?? seriesColor(i)), [series]);

  // Stacking sums visible series bottom-up; the tooltip still shows each series' own value.
  const data = useMemo(() => {
    const ys: (number | null)[][] = series.map((s) =>
      log ? s.values.map((v) => (v !== null && v > 0 ? v : null)) : s.values,
    );
    if (stack) {
      const acc = new Array(timestamps.length).fill(0);
      for (let i = 0; i < ys.length; i++) {
        if (hidden.has(i)) continue;
        ys[i] = ys[i].map((v, j) => (v === null ? null : (acc[j] += v)));
      }
    }
    return [timestamps, ...ys] as uPlot.AlignedData;
  }, [timestamps, series, stack, log, hidden]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const visible = series.map((_, i) => !hidden.has(i));
    const bands: uPlot.Band[] = [];
    if (stack) {
      let prev = -1;
      series.forEach((_, i) => {
        if (!visible[i]) return;
        if (prev >= 0) bands.push({ series: [i + 1, prev + 1] });
        prev = i;
      });
    }
    const fill = stack ? 0.5 : props.fill ?? 0.1;
    const tipEl = document.createElement("div");
    tipEl.className = "graph-tip";
    tipEl.style.display = "none";
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 100),
      height,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
      scales: {
        x: { time: true },
        y: {
          distr: log ? 3 : 1,
          log: log === 2 ? 2 : 10,
          range: (_u, lo, hi) => {
            let a = props.min ?? lo;
            let b = props.max ?? hi;
            if (a === null || b === null || !isFinite(a) || !isFinite(b)) return [0, 1];
            if (log) return [Math.max(a, Number.MIN_VALUE), b];
            if (a === b) {
              const d = Math.abs(a) * 0.1 || 1;
              a -= d;
              b += d;
            }
            const pad = (b - a) * 0.05;
            return [props.min ?? (a >= 0 && a - pad < 0 ? 0 : a - pad), props.max ?? b + pad];
          },
        },
      },
      axes: [
        { stroke: "#9fa7b3", grid: { stroke: "#2c3235", width: 1 }, ticks: { stroke: "#2c3235" } },
        {
          stroke: "#9fa7b3",
          grid: { stroke: "#2c3235", width: 1 },
          ticks: { stroke: "#2c3235" },
          size: 60,
          values: (_u, vals) => vals.map((v) => (v === null ? "" : format(v))),
        },
      ],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.name,
          stroke: colors[i],
          width: 1.5,
          show: visible[i],
          spanGaps: false,
          points: { show: timestamps.length < 60 },
          fill: fill > 0 ? alpha(colors[i], fill) : undefined,
        })),
      ],
      bands,
      hooks: {
        setCursor: [
          (u) => {
            const t = tipEl;
            const i = u.cursor.idx;
            if (i === null || i === undefined || u.cursor.left === undefined || u.cursor.left < 0) {
              t.style.display = "none";
              return;
            }
            const rows = series
              .map((s, k) => ({ s, k, v: s.values[i] }))
              .filter((r) => !hidden.has(r.k) && r.v !== null && r.v !== undefined)
              .sort((a, b) => (b.v as number) - (a.v as number))
              .slice(0, 20);
            t.replaceChildren();
            const head = document.createElement("div");
            head.className = "tip-time";
            head.textContent = formatDateTime(timestamps[i]);
            t.appendChild(head);
            for (const r of rows) {
              const row = document.createElement("div");
              row.className = "tip-row";
              const sw = document.createElement("span");
              sw.className = "swatch";
              sw.style.background = colors[r.k];
              const nm = document.createElement("span");
              nm.className = "tip-name";
              nm.textContent = r.s.name;
              const val = document.createElement("span");
              val.className = "tip-val";
              val.textContent = format(r.v as number);
              row.append(sw, nm, val);
              t.appendChild(row);
            }
            t.style.display = rows.length ? "block" : "none";
            const w = u.over.clientWidth;
            const left = u.cursor.left + 12;
            t.style.left = left + 260 > w ? `${Math.max(u.cursor.left - 272, 0)}px` : `${left}px`;
            t.style.top = `${(u.cursor.top ?? 0) + 12}px`;
          },
        ],
        setSelect: [
          (u) => {
            if (!props.onZoom || u.select.width < 3) return;
            const a = u.posToVal(u.select.left, "x");
            const b = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            props.onZoom(Math.floor(a), Math.ceil(b));
          },
        ],
        draw: [() => props.onDraw?.()],
      },
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    u.over.appendChild(tipEl);
    const ro = new ResizeObserver(() => {
      const w = Math.max(el.clientWidth, 100);
      if (w !== u.width) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [data, colors, format, height, log, stack, props.min, props.max, props.fill]);

  const toggle = (i: number, isolate: boolean) => {
    setHidden((h) => {
      if (isolate) {
        const onlyThis = h.size === series.length - 1 && !h.has(i);
        return onlyThis ? new Set() : new Set(series.map((_, k) => k).filter((k) => k !== i));
      }
      const n = new Set(h);
      if (n.has(i)) n.delete(i);
      else n.add(i);
      return n;
    });
  };

  const calcs = props.legendCalcs ?? [];
  return (
    <div class={`graph legend-${legend}`}>
      <div class="graph-wrap" style={{ minHeight: `${height}px` }}>
        <div class="graph-plot" ref={box} />
        {series.length === 0 && <div class="graph-empty">No data</div>}
      </div>
      {legend !== "none" && series.length > 0 && (
        <div class="graph-legend">
          {calcs.length > 0 && (
            <div class="legend-head">
              <span class="legend-name" />
              {calcs.map((c) => <span class="legend-calc">{c}</span>)}
            </div>
          )}
          {series.map((s, i) => (
            <div
              class={`legend-item${hidden.has(i) ? " off" : ""}`}
              title="Click to toggle; Ctrl/Shift-click to show only this series"
              onClick={(e) => toggle(i, e.ctrlKey || e.shiftKey || e.metaKey)}
            >
              <span class="swatch" style={{ background: colors[i] }} />
              <span class="legend-name">{s.name}</span>
              {calcs.map((c) => {
                const v = calc(c, s.values);
                return <span class="legend-calc">{v === null ? "-" : format(v)}</span>;
              })}
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
