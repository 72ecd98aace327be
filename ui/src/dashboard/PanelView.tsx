// One panel on the grid: waits until it is in or near the viewport (or idle work is left), fetches
// through the shared limiter, keeps its last data while refreshing, and reports its first draw.
import { useEffect, useRef, useState } from "preact/hooks";
import type { Panel } from "./model";
import { PANELS, type Annotation, type PanelData } from "../panels";
import { fetchPanelData, type Limiter } from "./loader";
import { interpolate, computeStep, type VarState } from "./vars";

export interface PanelCtx {
  vars: Map<string, VarState>;
  start: number;
  end: number;
  /** Raw from/to for links (e.g. "now-6h"). */
  from: string;
  to: string;
  /** Changes on every refresh. */
  tick: number;
  limiter: Limiter;
  annotations: Annotation[];
  /** Drag-select on a time series panel sets the dashboard range. */
  onZoom?: (from: number, to: number) => void;
}

interface Props {
  panel: Panel;
  index: number;
  width: number;
  height: number;
  ctx: PanelCtx;
  edit: boolean;
  /** Always load, even when off screen (view mode for one panel). */
  eager?: boolean;
  onDrawn: (index: number) => void;
  onMenu?: (action: "view" | "edit" | "duplicate" | "remove") => void;
  onDragStart?: (e: PointerEvent, kind: "move" | "resize") => void;
}

const EMPTY: PanelData = { targets: [], series: [], start: 0, end: 0 };

/** Link to Explore with a panel's queries (variables and built-ins filled in) and time range. */
export function exploreLink(panel: Panel, ctx: PanelCtx, width: number): string | null {
  const targets = (panel.targets ?? []).filter((x) => x.expr && x.expr.trim() !== "");
  if (!targets.length) return null;
  const range = Math.max(1, ctx.end - ctx.start);
  const q = new URLSearchParams();
  for (const t of targets) {
    const step = computeStep(range, width, t.interval ?? "");
    q.append("expr", interpolate(t.expr, ctx.vars, { intervalSec: step, rangeSec: range }));
  }
  // Explore understands "now", "now-6h" and Unix seconds; anything else (e.g. "now/d") is resolved here.
  const simple = (s: string) => /^now(\s*[+-]\s*\w+)?$/.test(s.trim());
  q.set("from", simple(ctx.from) ? ctx.from : String(ctx.start));
  q.set("to", simple(ctx.to) ? ctx.to : String(ctx.end));
  return `#/explore?${q.toString()}`;
}

export function PanelView({ panel, index, width, height, ctx, edit, eager, onDrawn, onMenu, onDragStart }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const [near, setNear] = useState<boolean | null>(eager ? true : null);
  const [data, setData] = useState<PanelData | null>(null);
  const [error, setError] = useState<string>("");
  const [loading, setLoading] = useState(false);
  const drawnOnce = useRef(false);
  const gen = useRef(0);
  const Comp = PANELS[panel.type];
  const needsData = panel.type !== "text" && panel.type !== "row";
  const bodyH = Math.max(20, height - 30);
  const bodyW = Math.max(20, width - 16);

  useEffect(() => {
    if (eager || !box.current || typeof IntersectionObserver === "undefined") {
      setNear(true);
      return;
    }
    const io = new IntersectionObserver((es) => setNear(es.some((e) => e.isIntersecting)), { rootMargin: "300px 0px" });
    io.observe(box.current);
    return () => io.disconnect();
  }, [eager]);

  const queryKey = JSON.stringify([panel.targets, panel.type, ctx.start, ctx.end, ctx.tick, [...ctx.vars.values()].map((v) => v.current), Math.round(bodyW / 50)]);
  const lastKey = useRef("");

  useEffect(() => {
    if (!needsData || near === null) return;
    if (lastKey.current === queryKey) return;
    // Off-screen panels still load, after everything in view (priority by position).
    const prio = near ? 0 : 1000;
    if (!near && data) return; // refresh of invisible panels waits until they scroll into view
    lastKey.current = queryKey;
    const my = ++gen.current;
    setLoading(true);
    ctx.limiter
      // A job superseded while it waited in the queue (newer range, variables, refresh) is skipped.
      .run(prio, () => (my === gen.current ? fetchPanelData(panel, ctx.vars, ctx.start, ctx.end, bodyW) : Promise.resolve(null)))
      .then((d) => {
        if (my !== gen.current || d === null) return;
        setData(d);
        setError("");
      })
      .catch((e) => {
        if (my !== gen.current) return;
        setError(e instanceof Error ? e.message : String(e));
        setData((old) => old ?? EMPTY);
      })
      .finally(() => my === gen.current && setLoading(false));
  }, [queryKey, near]);

  const drawn = () => {
    if (!drawnOnce.current) {
      drawnOnce.current = true;
      onDrawn(index);
    }
  };
  useEffect(() => {
    if (error || !Comp) drawn();
  }, [error, Comp]);

  const explore = exploreLink(panel, ctx, bodyW);
  const showData = needsData ? data : EMPTY;
  return (
    <div ref={box} class={`panel ${edit ? "editing" : ""}`} data-panel-index={index} data-panel-type={panel.type} style={{ width: `${width}px`, height: `${height}px` }}>
      <div
        class="panel-header"
        onPointerDown={edit && onDragStart ? (e) => { if (!(e.target as HTMLElement).closest("button,a")) onDragStart(e as PointerEvent, "move"); } : undefined}
      >
        <span class="panel-title" title={panel.description || panel.title}>{panel.title || "\u00a0"}</span>
        {loading && <span class="spinner" title="Loading" />}
        {error && <span class="panel-error-icon" title={error}>!</span>}
        <span class="panel-menu">
          <button title="View" onClick={() => onMenu?.("view")}>⤢</button>
          {explore && <a title="Explore" href={explore}>↗</a>}
          {edit && (
            <>
              <button title="Edit" onClick={() => onMenu?.("edit")}>✎</button>
              <button title="Duplicate" onClick={() => onMenu?.("duplicate")}>⎘</button>
              <button title="Remove" onClick={() => onMenu?.("remove")}>✕</button>
            </>
          )}
        </span>
      </div>
      <div class="panel-body" style={{ height: `${bodyH}px` }}>
        {error && !data?.series.length && <div class="panel-error">{error}</div>}
        {!Comp && <div class="panel-error">Unknown panel type “{panel.type}”</div>}
        {Comp && showData && !(error && !data?.series.length) && (
          <Comp panel={panel} data={showData} width={bodyW} height={bodyH} annotations={panel.type === "timeseries" ? ctx.annotations : undefined} onDrawn={drawn} onZoom={ctx.onZoom} />
        )}
      </div>
      {edit && onDragStart && <div class="resize-handle" onPointerDown={(e) => onDragStart(e as PointerEvent, "resize")} />}
    </div>
  );
}
