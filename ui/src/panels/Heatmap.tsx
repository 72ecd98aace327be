// Heatmap panel drawn on a canvas: classic histograms (series with an `le` label, de-cumulated)
// or native histograms from query_range's `histograms`; one cell per bucket and time step.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { classicHeatmap, nativeHeatmap, type Heatmap as HM } from "../dashboard/transform";
import { formatValue } from "../dashboard/units";
import type { PanelProps } from "./types";
import type { MatrixSeries } from "../api";

/** Dark blue → orange → yellow scale for a fraction in [0, 1]. */
function heatColor(f: number): string {
  const stops = [[23, 30, 45], [31, 96, 196], [255, 152, 48], [250, 222, 42]];
  const x = Math.max(0, Math.min(1, f)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const t = x - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export function buildHeatmap(targets: PanelProps["data"]["targets"]): HM {
  const natives: MatrixSeries[] = [];
  for (const t of targets) {
    if (t.data.resultType === "matrix") for (const s of t.data.result) if (s.histograms?.length) natives.push(s);
  }
  if (natives.length) return nativeHeatmap(natives);
  return classicHeatmap(targets.flatMap((t) => t.series));
}

export function Heatmap({ panel, data, width, height, onDrawn }: PanelProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const hm = useMemo(() => buildHeatmap(data.targets), [data]);
  const padL = 70, padB = 18;
  const [tip, setTip] = useState<{ x: number; y: number; text: string[] } | null>(null);
  const onMove = (e: MouseEvent) => {
    const nb = hm.buckets.length, nt = hm.times.length;
    const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    const t = Math.floor(((x - padL) / (width - padL)) * nt);
    const b = Math.floor(((height - padB - y) / (height - padB)) * nb);
    if (t < 0 || t >= nt || b < 0 || b >= nb) return setTip(null);
    const bk = hm.buckets[b];
    const fmt = (v: number) => (isFinite(v) ? formatValue(v, panel.unit ?? "short", panel.decimals) : v > 0 ? "+Inf" : "-Inf");
    setTip({
      x: Math.min(x + 12, width - 200),
      y: y + 12,
      text: [new Date(hm.times[t] * 1000).toLocaleString(), `${fmt(bk.lower)} – ${fmt(bk.upper)}`, `count ${formatValue(hm.counts[b][t], "short")}`],
    });
  };
  useEffect(() => {
    const cv = canvas.current;
    if (!cv) {
      onDrawn();
      return;
    }
    const dpr = devicePixelRatio || 1;
    cv.width = width * dpr;
    cv.height = height * dpr;
    const ctx = cv.getContext("2d")!;
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, width, height);
    const nb = hm.buckets.length, nt = hm.times.length;
    if (nb && nt) {
      let max = 0;
      for (const row of hm.counts) for (const v of row) max = Math.max(max, v);
      const cw = (width - padL) / nt, ch = (height - padB) / nb;
      for (let b = 0; b < nb; b++) {
        for (let t = 0; t < nt; t++) {
          const v = hm.counts[b][t];
          if (v <= 0) continue;
          ctx.fillStyle = heatColor(max ? Math.sqrt(v / max) : 0);
          ctx.fillRect(padL + t * cw, height - padB - (b + 1) * ch, Math.ceil(cw), Math.ceil(ch));
        }
      }
      ctx.fillStyle = "#8e9199";
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "right";
      const every = Math.max(1, Math.ceil(nb / Math.max(1, (height - padB) / 16)));
      for (let b = 0; b < nb; b += every) {
        const u = hm.buckets[b].upper;
        ctx.fillText(isFinite(u) ? formatValue(u, panel.unit ?? "short", panel.decimals) : "+Inf", padL - 4, height - padB - b * ch - ch / 2 + 4);
      }
      ctx.textAlign = "center";
      const tEvery = Math.max(1, Math.ceil(nt / Math.max(1, (width - padL) / 80)));
      for (let t = 0; t < nt; t += tEvery) {
        const d = new Date(hm.times[t] * 1000);
        ctx.fillText(`${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`, padL + t * cw + cw / 2, height - 4);
      }
    }
    onDrawn();
  }, [hm, width, height]);
  if (!hm.buckets.length) return <div class="nodata">No histogram data (needs `le` buckets or native histograms)</div>;
  return (
    <div style={{ position: "relative" }} onMouseMove={onMove} onMouseLeave={() => setTip(null)}>
      <canvas ref={canvas} style={{ width: `${width}px`, height: `${height}px`, display: "block" }} />
      {tip && (
        <div class="tooltip" style={{ left: `${tip.x}px`, top: `${tip.y}px` }}>
          <div class="tt-time">{tip.text[0]}</div>
          <div>{tip.text[1]}</div>
          <div>{tip.text[2]}</div>
        </div>
      )}
    </div>
  );
}
