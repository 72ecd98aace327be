// Panels that reduce each series to one value: stat (big number with sparkline), gauge (SVG arc),
// bar gauge, bar chart and pie. Colours come from thresholds or overrides.
import { useEffect } from "preact/hooks";
import { reduce, type Series } from "../dashboard/transform";
import { formatValue, overridesFor, PALETTE, resolveColor, thresholdColor } from "../dashboard/units";
import type { Panel, Threshold } from "../dashboard/model";
import type { PanelProps } from "./types";

interface Item { name: string; value: number | null; color: string; unit: string; series: Series }

/** One item per visible series: its reduced value, name and colour. */
export function reduceItems(panel: Panel, series: Series[], byThreshold: boolean): Item[] {
  return series
    .map((s, i) => ({ s, i, o: overridesFor(s.name, panel.overrides) }))
    .filter((x) => !x.o.hide)
    .map(({ s, i, o }) => {
      const value = reduce(s.values, panel.reduce ?? "last");
      const color = o.color ?? (byThreshold && panel.thresholds?.length ? thresholdColor(value, panel.thresholds) : PALETTE[i % PALETTE.length]);
      return { name: o.display_name ?? s.name, value, color, unit: o.unit ?? panel.unit ?? "none", series: s };
    });
}

function useDrawn(onDrawn: () => void, deps: unknown[]) {
  useEffect(() => onDrawn(), deps);
}

function Sparkline({ s, color, w, h }: { s: Series; color: string; w: number; h: number }) {
  const pts = s.values.map((v, i) => [s.times[i], v] as const).filter((p): p is readonly [number, number] => p[1] !== null && isFinite(p[1]));
  if (pts.length < 2) return null;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of pts) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = hi - lo || 1;
  const d = pts.map(([t, v], i) => `${i ? "L" : "M"}${(((t - t0) / (t1 - t0 || 1)) * w).toFixed(1)},${(h - ((v - lo) / span) * (h - 2) - 1).toFixed(1)}`).join("");
  return (
    <svg class="sparkline" width={w} height={h} viewBox={`0 0 ${w} ${h}`}>
      <path d={`${d}L${w},${h}L0,${h}Z`} fill={color} opacity="0.15" />
      <path d={d} fill="none" stroke={color} stroke-width="1.5" />
    </svg>
  );
}

export function Stat({ panel, data, width, height, onDrawn }: PanelProps) {
  const items = reduceItems(panel, data.series, true);
  useDrawn(onDrawn, [data, width, height]);
  if (!items.length) return <div class="nodata">No data</div>;
  const n = items.length;
  const cols = Math.min(n, Math.max(1, Math.floor(width / 140)));
  const rows = Math.ceil(n / cols);
  const cw = width / cols, ch = height / rows;
  const longest = Math.max(...items.map((it) => formatValue(it.value, it.unit, panel.decimals).length), 1);
  // A digit is about 0.6 em wide: fit the longest value into the cell with a little margin.
  const font = Math.max(10, Math.min(ch * 0.45, (cw - 16) / (longest * 0.62), 72));
  return (
    <div class="stat-grid" style={{ gridTemplateColumns: `repeat(${cols}, 1fr)` }}>
      {items.map((it) => (
        <div class="stat" style={{ height: `${ch}px` }}>
          {panel.sparkline !== false && <Sparkline s={it.series} color={it.color} w={Math.floor(cw) - 8} h={Math.floor(ch * 0.45)} />}
          <div class="stat-value" style={{ color: it.color, fontSize: `${font}px` }}>{formatValue(it.value, it.unit, panel.decimals)}</div>
          {n > 1 && <div class="stat-name">{it.name}</div>}
        </div>
      ))}
    </div>
  );
}

function defaultMax(panel: Panel, items: Item[]): number {
  if (panel.max !== undefined) return panel.max;
  const u = panel.unit ?? "";
  if (u === "percentunit") return 1;
  if (u === "percent") return 100;
  const lastStep = [...(panel.thresholds ?? [])].reverse().find((t) => t.value !== null);
  const m = Math.max(...items.map((i) => i.value ?? 0), lastStep?.value ?? 0);
  return m > 0 ? m : 100;
}

function polar(cx: number, cy: number, r: number, deg: number): [number, number] {
  const a = ((deg - 90) * Math.PI) / 180;
  return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
}

function arc(cx: number, cy: number, r: number, from: number, to: number): string {
  const [x0, y0] = polar(cx, cy, r, from);
  const [x1, y1] = polar(cx, cy, r, to);
  return `M${x0.toFixed(2)},${y0.toFixed(2)}A${r},${r} 0 ${to - from > 180 ? 1 : 0} 1 ${x1.toFixed(2)},${y1.toFixed(2)}`;
}

/** Threshold bands as (from, to, colour) fractions of [min, max]. */
function bands(steps: Threshold[] | undefined, min: number, max: number): [number, number, string][] {
  if (!steps?.length) return [];
  const out: [number, number, string][] = [];
  steps.forEach((s, i) => {
    const a = s.value === null ? min : s.value;
    const b = i + 1 < steps.length && steps[i + 1].value !== null ? (steps[i + 1].value as number) : max;
    const fa = Math.max(0, Math.min(1, (a - min) / (max - min)));
    const fb = Math.max(0, Math.min(1, (b - min) / (max - min)));
    if (fb > fa) out.push([fa, fb, resolveColor(s.color)]);
  });
  return out;
}

export function Gauge({ panel, data, width, height, onDrawn }: PanelProps) {
  const items = reduceItems(panel, data.series, true);
  useDrawn(onDrawn, [data, width, height]);
  if (!items.length) return <div class="nodata">No data</div>;
  const min = panel.min ?? 0;
  const max = defaultMax(panel, items);
  const n = items.length;
  const cw = width / n;
  const size = Math.max(40, Math.min(cw, height * 1.15));
  const r = size * 0.4, cx = size / 2, cy = size * 0.5;
  const START = -120, SWEEP = 240;
  return (
    <div class="gauges">
      {items.map((it) => {
        const f = it.value === null ? 0 : Math.max(0, Math.min(1, (it.value - min) / (max - min || 1)));
        return (
          <div class="gauge" style={{ width: `${cw}px` }}>
            <svg width={size} height={size * 0.85} viewBox={`0 0 ${size} ${size * 0.85}`}>
              <path d={arc(cx, cy, r, START, START + SWEEP)} stroke="#2c3038" stroke-width={r * 0.22} fill="none" />
              {f > 0.001 && <path d={arc(cx, cy, r, START, START + SWEEP * f)} stroke={it.color} stroke-width={r * 0.22} fill="none" />}
              {bands(panel.thresholds, min, max).map(([a, b, c]) => (
                <path d={arc(cx, cy, r * 1.2, START + SWEEP * a, START + SWEEP * b - 0.5)} stroke={c} stroke-width={r * 0.06} fill="none" />
              ))}
              <text x={cx} y={cy + r * 0.15} text-anchor="middle" fill={it.color} font-size={r * 0.42} font-weight="500">
                {formatValue(it.value, it.unit, panel.decimals)}
              </text>
            </svg>
            {n > 1 && <div class="stat-name">{it.name}</div>}
          </div>
        );
      })}
    </div>
  );
}

export function BarGauge({ panel, data, width, height, onDrawn }: PanelProps) {
  const items = reduceItems(panel, data.series, true);
  useDrawn(onDrawn, [data, width, height]);
  if (!items.length) return <div class="nodata">No data</div>;
  const min = panel.min ?? 0;
  const max = defaultMax(panel, items);
  const vertical = panel.orientation === "vertical";
  return (
    <div class={`bargauge ${vertical ? "vertical" : ""}`}>
      {items.map((it) => {
        const f = it.value === null ? 0 : Math.max(0, Math.min(1, (it.value - min) / (max - min || 1)));
        return (
          <div class="bg-item">
            <div class="bg-name" title={it.name}>{it.name}</div>
            <div class="bg-track">
              <div class="bg-fill" style={vertical ? { height: `${f * 100}%`, background: it.color } : { width: `${f * 100}%`, background: it.color }} />
            </div>
            <div class="bg-value" style={{ color: it.color }}>{formatValue(it.value, it.unit, panel.decimals)}</div>
          </div>
        );
      })}
    </div>
  );
}

export function BarChart({ panel, data, width, height, onDrawn }: PanelProps) {
  const items = reduceItems(panel, data.series, false);
  useDrawn(onDrawn, [data, width, height]);
  if (!items.length) return <div class="nodata">No data</div>;
  const horizontal = panel.orientation === "horizontal";
  const vals = items.map((i) => i.value ?? 0);
  const hi = Math.max(0, ...vals), lo = Math.min(0, ...vals);
  const span = hi - lo || 1;
  const padB = horizontal ? 4 : 18, padL = horizontal ? Math.min(140, width * 0.3) : 4;
  const W = width - padL - 4, H = height - padB - 4;
  const n = items.length;
  return (
    <svg class="barchart" width={width} height={height}>
      {items.map((it, i) => {
        const v = it.value ?? 0;
        const label = formatValue(it.value, it.unit, panel.decimals);
        if (horizontal) {
          const bh = (H / n) * 0.7, y = 4 + (H / n) * i + (H / n) * 0.15;
          const x0 = padL + ((0 - lo) / span) * W, x1 = padL + ((v - lo) / span) * W;
          return (
            <g>
              <text x={padL - 4} y={y + bh / 2 + 4} text-anchor="end" class="axis-label">{it.name.slice(0, 24)}</text>
              <rect x={Math.min(x0, x1)} y={y} width={Math.max(1, Math.abs(x1 - x0))} height={bh} fill={it.color}><title>{`${it.name}: ${label}`}</title></rect>
            </g>
          );
        }
        const bw = (W / n) * 0.7, x = padL + (W / n) * i + (W / n) * 0.15;
        const y0 = 4 + H - ((0 - lo) / span) * H, y1 = 4 + H - ((v - lo) / span) * H;
        return (
          <g>
            <rect x={x} y={Math.min(y0, y1)} width={bw} height={Math.max(1, Math.abs(y1 - y0))} fill={it.color}><title>{`${it.name}: ${label}`}</title></rect>
            {bw > 30 && <text x={x + bw / 2} y={height - 4} text-anchor="middle" class="axis-label">{it.name.slice(0, Math.floor(bw / 6))}</text>}
          </g>
        );
      })}
    </svg>
  );
}

export function Pie({ panel, data, width, height, onDrawn }: PanelProps) {
  const items = reduceItems(panel, data.series, false).filter((i) => i.value !== null && i.value > 0);
  useDrawn(onDrawn, [data, width, height]);
  if (!items.length) return <div class="nodata">No data</div>;
  const total = items.reduce((a, i) => a + (i.value ?? 0), 0);
  const legendW = width > 300 ? Math.min(200, width * 0.4) : 0;
  const size = Math.max(20, Math.min(width - legendW, height) - 8);
  const r = size / 2, c = size / 2;
  let angle = 0;
  return (
    <div class="pie">
      <svg width={size} height={size}>
        {items.length === 1 ? (
          <circle cx={c} cy={c} r={r} fill={items[0].color} />
        ) : (
          items.map((it) => {
            const frac = (it.value ?? 0) / total;
            const a0 = angle, a1 = angle + frac * 360;
            angle = a1;
            const [x0, y0] = polar(c, c, r, a0);
            const [x1, y1] = polar(c, c, r, a1);
            return (
              <path d={`M${c},${c}L${x0},${y0}A${r},${r} 0 ${a1 - a0 > 180 ? 1 : 0} 1 ${x1},${y1}Z`} fill={it.color} stroke="#181b1f" stroke-width="1">
                <title>{`${it.name}: ${formatValue(it.value, it.unit, panel.decimals)} (${(frac * 100).toFixed(1)}%)`}</title>
              </path>
            );
          })
        )}
      </svg>
      {legendW > 0 && (
        <div class="legend" style={{ width: `${legendW}px`, maxHeight: `${height}px` }}>
          <table><tbody>
            {items.map((it) => (
              <tr><td class="name"><i style={{ background: it.color }} />{it.name}</td><td class="num">{(((it.value ?? 0) / total) * 100).toFixed(1)}%</td></tr>
            ))}
          </tbody></table>
        </div>
      )}
    </div>
  );
}
