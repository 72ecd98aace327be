// Time-series panel on uPlot: one instance per panel, reused across refreshes (setData/setSize)
// unless the set of series changes; stacking, log scale, overrides, alert annotations, a hover
// tooltip and a legend with calcs whose entries toggle series.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { align, reduce, stack } from "../dashboard/transform";
import { formatValue, overridesFor, PALETTE } from "../dashboard/units";
import type { PanelProps } from "./types";

function fade(color: string, alpha: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(color);
  if (!m) return color;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
}

/** Most series one time-series panel draws. */
export const MAX_SERIES = 300;

/** Width of the y axis for its tick labels (about 7 px per character at 12 px). */
function axisWidth(labels: string[] | null | undefined): number {
  const n = Math.max(3, ...(labels ?? []).map((l) => (l ?? "").length));
  return Math.min(120, 14 + n * 7);
}

/** Y range: explicit min/max win; otherwise the data with 5% headroom, from 0 for flat or stacked data. */
export function yRange(mn: number | null, mx: number | null, min?: number, max?: number, stacked = false): [number, number] {
  if (mn === null || mx === null || !isFinite(mn) || !isFinite(mx)) return [min ?? 0, max ?? 1];
  let lo = mn > 0 && !stacked && mx !== mn ? mn - (mx - mn) * 0.05 : Math.min(0, mn);
  let hi = mx === mn ? (mx === 0 ? 1 : mx + Math.abs(mx) * 0.1) : mx + (mx - mn) * 0.05;
  if (min !== undefined) lo = min;
  if (max !== undefined) hi = max;
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}

export function TimeSeries({ panel, data, width, height, annotations, onDrawn, onZoom }: PanelProps) {
  const zoomRef = useRef(onZoom);
  zoomRef.current = onZoom;
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = useRef("");
  const tip = useRef<HTMLDivElement>(null);
  const annRef = useRef(annotations);
  annRef.current = annotations;
  const [hidden, setHidden] = useState<Set<number>>(new Set());

  const legend = panel.legend ?? { show: true };
  const showLegend = legend.show !== false;
  const calcs = legend.calcs ?? [];
  const right = legend.placement === "right";

  const model = useMemo(() => {
    const all = data.series
      .map((s, i) => ({ s, i, o: overridesFor(s.name, panel.overrides) }))
      .filter((x) => !x.o.hide);
    // uPlot and the legend stay responsive up to a few hundred series; more are cut with a note.
    const visible = all.slice(0, MAX_SERIES);
    const [times, ...cols] = align(visible.map((x) => x.s));
    let drawn = panel.stack ? stack(cols) : cols;
    if (panel.log) drawn = drawn.map((c) => c.map((v) => (v !== null && v > 0 ? v : null)));
    const entries = visible.map((x, k) => ({
      name: x.o.display_name ?? x.s.name,
      color: x.o.color ?? PALETTE[x.i % PALETTE.length],
      unit: x.o.unit ?? panel.unit ?? "none",
      raw: cols[k],
      calcs: calcs.map((c) => reduce(cols[k], c)),
    }));
    return { times, drawn, entries, total: all.length };
  }, [data, panel]);

  const rangeRef = useRef({ start: data.start, end: data.end });
  rangeRef.current = { start: data.start, end: data.end };
  const modelRef = useRef(model);
  modelRef.current = model;

  const legendRows = showLegend ? Math.min(model.entries.length, 5) : 0;
  const legendPx = showLegend && !right ? 22 + legendRows * 20 : 0;
  const legendW = showLegend && right ? Math.min(260, Math.floor(width * 0.35)) : 0;
  const plotW = Math.max(50, width - legendW);
  const plotH = Math.max(40, height - legendPx);

  useEffect(() => {
    if (!el.current) return;
    const k = JSON.stringify([model.entries.map((e) => [e.name, e.color]), panel.stack, panel.log, panel.unit, panel.min, panel.max, panel.decimals]);
    const uData = [model.times, ...model.drawn] as uPlot.AlignedData;
    if (plot.current && key.current === k) {
      plot.current.setData(uData);
      onDrawn();
      return;
    }
    plot.current?.destroy();
    key.current = k;
    const unit = panel.unit ?? "none";
    const opts: uPlot.Options = {
      width: plotW,
      height: plotH,
      legend: { show: false },
      cursor: { points: { size: 6 }, drag: { x: true, y: false, setScale: false } },
      scales: {
        x: { time: true, range: (_u, mn, mx) => (rangeRef.current.end > rangeRef.current.start ? [rangeRef.current.start, rangeRef.current.end] : [mn, mx]) },
        y: panel.log
          ? { distr: 3, log: panel.log === 2 ? 2 : 10 }
          : { range: (_u, mn, mx) => yRange(mn, mx, panel.min, panel.max, !!panel.stack) },
      },
      axes: [
        { stroke: "#8e9199", grid: { stroke: "#2c3038", width: 1 }, ticks: { stroke: "#2c3038" } },
        {
          stroke: "#8e9199",
          grid: { stroke: "#2c3038", width: 1 },
          ticks: { stroke: "#2c3038" },
          size: (_u, vals) => axisWidth(vals),
          values: (_u, vals) => vals.map((v) => formatValue(v, unit, panel.decimals)),
        },
      ],
      series: [
        {},
        ...model.entries.map((e, i) => ({
          label: e.name,
          stroke: e.color,
          width: 1.25,
          fill: panel.stack ? fade(e.color, 0.35) : fade(e.color, 0.08),
          show: !hidden.has(i),
          spanGaps: false,
          points: { show: false },
        })),
      ],
      hooks: {
        draw: [
          (u: uPlot) => {
            const anns = annRef.current ?? [];
            if (!anns.length) return;
            const ctx = u.ctx;
            ctx.save();
            ctx.setLineDash([4, 4]);
            ctx.lineWidth = 1;
            for (const a of anns) {
              const x = Math.round(u.valToPos(a.time, "x", true));
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.strokeStyle = a.kind === "start" ? "#f2495c" : "#73bf69";
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
        setSelect: [
          (u: uPlot) => {
            if (u.select.width < 3) return;
            const a = u.posToVal(u.select.left, "x");
            const b = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoomRef.current?.(Math.floor(a), Math.ceil(b));
          },
        ],
        setCursor: [
          (u: uPlot) => {
            const t = tip.current;
            if (!t) return;
            const idx = u.cursor.idx;
            if (idx === null || idx === undefined || u.cursor.left === undefined || u.cursor.left < 0) {
              t.style.display = "none";
              return;
            }
            const m = modelRef.current;
            const ts = new Date(m.times[idx] * 1000).toLocaleString();
            const rows = m.entries
              .map((e, i) => ({ e, v: e.raw[idx], i }))
              .filter((r) => r.v !== null && r.v !== undefined && u.series[r.i + 1].show)
              .sort((a, b) => (b.v as number) - (a.v as number))
              .slice(0, 12);
            t.replaceChildren();
            const head = document.createElement("div");
            head.className = "tt-time";
            head.textContent = ts;
            t.appendChild(head);
            for (const r of rows) {
              const row = document.createElement("div");
              const sw = document.createElement("i");
              sw.style.background = r.e.color;
              row.appendChild(sw);
              row.appendChild(document.createTextNode(`${r.e.name}: ${formatValue(r.v, r.e.unit, panel.decimals)}`));
              t.appendChild(row);
            }
            t.style.display = "block";
            const left = (u.cursor.left ?? 0) + u.bbox.left / devicePixelRatio;
            t.style.left = `${Math.min(left + 12, Math.max(0, plotW - 220))}px`;
            t.style.top = `${(u.cursor.top ?? 0) + 8}px`;
          },
        ],
      },
    };
    plot.current = new uPlot(opts, uData, el.current);
    onDrawn();
  }, [model]);

  useEffect(() => {
    plot.current?.setSize({ width: plotW, height: plotH });
  }, [plotW, plotH]);

  useEffect(() => {
    plot.current?.redraw(false, false);
  }, [annotations]);

  useEffect(() => () => {
    plot.current?.destroy();
    plot.current = null;
  }, []);

  const toggle = (i: number, solo: boolean) => {
    const next = new Set<number>();
    if (solo) {
      const onlyThis = hidden.size === model.entries.length - 1 && !hidden.has(i);
      if (!onlyThis) model.entries.forEach((_, k) => k !== i && next.add(k));
    } else {
      hidden.forEach((h) => next.add(h));
      if (next.has(i)) next.delete(i);
      else next.add(i);
    }
    setHidden(next);
    model.entries.forEach((_, k) => plot.current?.setSeries(k + 1, { show: !next.has(k) }));
  };

  return (
    <div class={`ts ${right ? "ts-right" : ""}`}>
      {model.total > model.entries.length && (
        <div class="ts-cut muted small">Showing {model.entries.length} of {model.total} series</div>
      )}
      <div class="ts-plot" style={{ position: "relative" }}>
        <div ref={el} />
        <div ref={tip} class="tooltip" style={{ display: "none" }} />
      </div>
      {showLegend && model.entries.length > 0 && (
        <div class="legend" style={right ? { width: `${legendW}px`, maxHeight: `${height}px` } : { maxHeight: `${legendPx}px` }}>
          <table>
            {calcs.length > 0 && (
              <thead><tr><th />{calcs.map((c) => <th>{c}</th>)}</tr></thead>
            )}
            <tbody>
              {model.entries.map((e, i) => (
                <tr class={hidden.has(i) ? "off" : ""} onClick={(ev) => toggle(i, !(ev.ctrlKey || ev.metaKey || ev.shiftKey))}>
                  <td class="name"><i style={{ background: e.color }} />{e.name}</td>
                  {e.calcs.map((v) => <td class="num">{formatValue(v, e.unit, panel.decimals)}</td>)}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
