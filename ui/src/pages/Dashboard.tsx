// The dashboard view (#/d/<uid>?from=&to=&var-x=&refresh=&view=): toolbar with time picker and
// auto-refresh, variable pickers, the 24-column grid (drag/resize in edit mode), collapsible rows,
// a single panel viewed large, and editing/saving/versions/export.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Dashboard as Dash, DashboardMeta, Panel, VersionInfo } from "../dashboard/model";
import { clean } from "../dashboard/model";
import { ApiError, createDashboard, exportUrl, getDashboard, getVersion, listVersions, saveDashboard } from "../dashboard/api";
import { COLUMNS, GAP_PX, ROW_PX, layout, layoutHeight, movePanel, type Cell } from "../dashboard/layout";
import { Limiter, fetchAlertAnnotations, resolveVariables } from "../dashboard/loader";
import { parseDuration, parseTime, QUICK_RANGES, REFRESH_OPTIONS } from "../dashboard/timerange";
import type { VarState } from "../dashboard/vars";
import { PanelView, type PanelCtx } from "../dashboard/PanelView";
import { VariableBar } from "../dashboard/VariableBar";
import { PanelEditor, SettingsEditor } from "../dashboard/Editor";
import type { Annotation } from "../panels";
import { href } from "../router";
import "../dashboard/dashboard.css";

declare global {
  interface Window { __sextantPanelsDrawn?: number }
}

const NEW_DASHBOARD: Dash = {
  title: "New dashboard",
  time: { from: "now-6h", to: "now" },
  panels: [{ type: "timeseries", title: "New panel", grid: { x: 0, y: 0, w: 12, h: 8 }, targets: [{ expr: "up", ref: "A" }] }],
};

/** Keeps the URL in step with the view state without adding history entries. */
function writeUrl(uid: string, p: Record<string, string | string[] | undefined>) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, v);
  }
  const s = q.toString();
  history.replaceState(null, "", `#/d/${encodeURIComponent(uid)}${s ? "?" + s : ""}`);
}

/** Tracks an element's width; pass the element from a callback ref. */
function useWidth(el: HTMLElement | null): number {
  const [w, setW] = useState(0);
  useEffect(() => {
    if (!el) return;
    setW(el.clientWidth);
    const ro = new ResizeObserver(() => setW(el.clientWidth));
    ro.observe(el);
    return () => ro.disconnect();
  }, [el]);
  return w;
}

function TimePicker({ from, to, onChange }: { from: string; to: string; onChange: (f: string, t: string) => void }) {
  const [open, setOpen] = useState(false);
  const [f, setF] = useState(from);
  const [t, setT] = useState(to);
  useEffect(() => { setF(from); setT(to); }, [from, to]);
  const show = (s: string) => (/^\d+(\.\d+)?$/.test(s.trim()) ? new Date(parseTime(s) * 1000).toLocaleString() : s);
  const label = (to === "now" && QUICK_RANGES.find(([r]) => r === from)?.[1]) || `${show(from)} to ${show(to)}`;
  const bad = isNaN(parseTime(f)) || isNaN(parseTime(t));
  return (
    <div class="timepicker">
      <button class="tp-button" onClick={() => setOpen(!open)}>{label}</button>
      {open && (
        <div class="tp-menu">
          <div class="tp-abs">
            <label>From <input value={f} onInput={(e) => setF((e.target as HTMLInputElement).value)} /></label>
            <label>To <input value={t} onInput={(e) => setT((e.target as HTMLInputElement).value)} /></label>
            <button disabled={bad} onClick={() => { onChange(f, t); setOpen(false); }}>Apply</button>
            <div class="muted small">now-6h, now/d, 2026-01-02T15:04:05Z, or Unix ms</div>
          </div>
          <div class="tp-quick">
            {QUICK_RANGES.map(([r, l]) => (
              <a href="javascript:void 0" class={r === from && to === "now" ? "active" : ""} onClick={() => { onChange(r, "now"); setOpen(false); }}>{l}</a>
            ))}
          </div>
        </div>
      )}
    </div>
  );
}

export function DashboardPage({ uid, params, isNew = false }: { uid: string; params: URLSearchParams; isNew?: boolean }) {
  const [dash, setDash] = useState<Dash | null>(null);
  const [meta, setMeta] = useState<DashboardMeta | null>(null);
  const [loadError, setLoadError] = useState("");
  const [edit, setEdit] = useState(isNew);
  const [dirty, setDirty] = useState(false);
  const [from, setFrom] = useState(params.get("from") ?? "");
  const [to, setTo] = useState(params.get("to") ?? "");
  const [refresh, setRefresh] = useState<string | null>(params.get("refresh"));
  const [view, setView] = useState<number | null>(params.get("view") !== null ? Number(params.get("view")) : null);
  const [wanted, setWanted] = useState<Map<string, string[]>>(() => {
    const m = new Map<string, string[]>();
    for (const [k, v] of params) if (k.startsWith("var-")) m.set(k.slice(4), [...(m.get(k.slice(4)) ?? []), v]);
    return m;
  });
  const [vars, setVars] = useState<Map<string, VarState>>(new Map());
  const [varErrors, setVarErrors] = useState<Map<string, string>>(new Map());
  const [varsReady, setVarsReady] = useState(false);
  const [tick, setTick] = useState(0);
  const [range, setRange] = useState<{ start: number; end: number }>({ start: 0, end: 0 });
  const [annotations, setAnnotations] = useState<Annotation[]>([]);
  const [editing, setEditing] = useState<number | null>(null);
  const [settings, setSettings] = useState(false);
  const [versions, setVersions] = useState<VersionInfo[] | null>(null);
  const [message, setMessage] = useState("");
  const [status, setStatus] = useState<{ ok: boolean; text: string } | null>(null);
  const [drag, setDrag] = useState<{ index: number; kind: "move" | "resize"; dx: number; dy: number } | null>(null);
  const [gridEl, gridRef] = useState<HTMLDivElement | null>(null);
  const width = useWidth(gridEl);
  const limiter = useMemo(() => new Limiter(6), [uid]);
  const drawnSet = useRef(new Set<number>());

  // Load the dashboard.
  useEffect(() => {
    window.__sextantPanelsDrawn = undefined;
    delete document.body.dataset.panelsDrawn;
    if (isNew) {
      setDash(structuredClone(NEW_DASHBOARD));
      setMeta(null);
      return;
    }
    setDash(null);
    setLoadError("");
    getDashboard(uid)
      .then((r) => {
        performance.mark("sextant:dashboard-loaded");
        setDash(r.dashboard);
        setMeta(r.meta);
      })
      .catch((e) => setLoadError(e instanceof Error ? e.message : String(e)));
  }, [uid, isNew]);

  const effFrom = from || dash?.time?.from || "now-6h";
  const effTo = to || dash?.time?.to || "now";
  const effRefresh = refresh ?? dash?.refresh ?? "";

  // Time range (re-evaluated on every refresh tick).
  useEffect(() => {
    const s = parseTime(effFrom), e = parseTime(effTo);
    if (!isNaN(s) && !isNaN(e) && e > s) setRange({ start: Math.floor(s), end: Math.ceil(e) });
  }, [effFrom, effTo, tick]);

  // Auto-refresh.
  useEffect(() => {
    const sec = parseDuration(effRefresh);
    if (!effRefresh || isNaN(sec) || sec <= 0) return;
    const id = setInterval(() => setTick((t) => t + 1), Math.max(1, sec) * 1000);
    return () => clearInterval(id);
  }, [effRefresh]);

  // Variables.
  const varDefs = JSON.stringify(dash?.variables ?? []);
  useEffect(() => {
    if (!dash || !range.end) return;
    let stale = false;
    const s0 = parseTime(effFrom), e0 = parseTime(effTo);
    const [vs, ve] = !isNaN(s0) && !isNaN(e0) && e0 > s0 ? [s0, e0] : [range.start, range.end];
    resolveVariables(dash.variables ?? [], wanted, vs, ve).then(({ vars: v, errors }) => {
      if (stale) return;
      setVars(v);
      setVarErrors(errors);
      if (!varsReady) performance.mark("sextant:variables-ready");
      setVarsReady(true);
    });
    return () => { stale = true; };
    // Like Grafana's "on time range change": options follow the range, not every auto-refresh.
  }, [varDefs, wanted, dash !== null, range.end !== 0, effFrom, effTo]);

  // Esc leaves the single-panel view.
  useEffect(() => {
    if (view === null) return;
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setView(null);
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [view]);

  // Alert annotations.
  useEffect(() => {
    if (!range.end || !width) return;
    fetchAlertAnnotations(range.start, range.end, width).then(setAnnotations, () => setAnnotations([]));
  }, [range, Math.round(width / 200)]);

  // URL.
  useEffect(() => {
    if (!dash || isNew) return;
    const p: Record<string, string | string[] | undefined> = { from: from || undefined, to: to || undefined, refresh: refresh ?? undefined };
    for (const [name, s] of vars) if (s.def.type !== "constant") p[`var-${name}`] = s.current;
    if (view !== null) p.view = String(view);
    writeUrl(uid, p);
  }, [from, to, refresh, vars, view, dash !== null]);

  const panels = dash?.panels ?? [];
  const cells = useMemo(() => layout(panels), [panels]);
  const visibleCells = cells.filter((c) => !c.hidden);
  const dataCells = visibleCells.filter((c) => !c.row);

  // A dashboard without data panels has nothing to wait for.
  useEffect(() => {
    if (varsReady && dash && dataCells.length === 0 && window.__sextantPanelsDrawn === undefined) {
      window.__sextantPanelsDrawn = 0;
      document.body.dataset.panelsDrawn = "0";
    }
  }, [varsReady, dash, dataCells.length]);

  const onDrawn = (i: number) => {
    drawnSet.current.add(i);
    const want = view !== null ? 1 : dataCells.length;
    if (drawnSet.current.size >= want && window.__sextantPanelsDrawn === undefined) {
      performance.mark("sextant:panels-drawn");
      window.__sextantPanelsDrawn = drawnSet.current.size;
      document.body.dataset.panelsDrawn = String(drawnSet.current.size);
    }
  };

  const update = (d: Dash) => {
    setDash(d);
    setDirty(true);
  };
  const setPanels = (p: Panel[]) => dash && update({ ...dash, panels: p });

  const onZoom = (a: number, b: number) => {
    setFrom(String(a * 1000));
    setTo(String(b * 1000));
  };
  /** Moves the range by a fraction of its length (absolute times afterwards, like Grafana). */
  const shiftRange = (frac: number) => {
    const len = range.end - range.start;
    if (len <= 0) return;
    const d = len * frac;
    const now = Date.now() / 1000;
    const end = Math.min(range.end + d, now);
    onZoom(Math.round(end - len), Math.round(end));
  };
  const zoomOut = () => {
    const len = range.end - range.start;
    if (len <= 0) return;
    const now = Date.now() / 1000;
    const end = Math.min(range.end + len / 2, now);
    onZoom(Math.round(end - len * 2), Math.round(end));
  };
  const ctx: PanelCtx = { vars, start: range.start, end: range.end, from: effFrom, to: effTo, tick, limiter, annotations, onZoom };

  if (loadError) return <section class="page"><h1>Dashboard “{uid}”</h1><div class="panel-error">{loadError}</div><a href="#/dashboards">All dashboards</a></section>;
  if (!dash) return <section class="page"><p class="muted">Loading…</p></section>;

  const colW = width ? (width - GAP_PX * (COLUMNS - 1)) / COLUMNS : 0;
  const px = (c: { x: number; y: number; w: number; h: number }) => ({
    left: c.x * (colW + GAP_PX),
    top: c.y * (ROW_PX + GAP_PX),
    width: c.w * colW + (c.w - 1) * GAP_PX,
    height: c.h * ROW_PX + (c.h - 1) * GAP_PX,
  });
  const narrow = width > 0 && width < 700;

  const startDrag = (index: number, cell: Cell) => (e: PointerEvent, kind: "move" | "resize") => {
    e.preventDefault();
    const x0 = e.clientX, y0 = e.clientY;
    let last = { dx: 0, dy: 0 };
    setDrag({ index, kind, dx: 0, dy: 0 });
    const move = (ev: PointerEvent) => {
      last = { dx: ev.clientX - x0, dy: ev.clientY - y0 };
      setDrag({ index, kind, ...last });
    };
    const up = () => {
      removeEventListener("pointermove", move);
      removeEventListener("pointerup", up);
      setDrag(null);
      const gx = Math.round(last.dx / (colW + GAP_PX)), gy = Math.round(last.dy / (ROW_PX + GAP_PX));
      if (!gx && !gy) return;
      const g = kind === "move"
        ? { x: cell.x + gx, y: cell.y + gy, w: cell.w, h: cell.h }
        : { x: cell.x, y: cell.y, w: Math.max(1, cell.w + gx), h: Math.max(2, cell.h + gy) };
      setPanels(movePanel(panels, index, g));
      // A move into another row changes list positions; the side form would point elsewhere.
      setEditing(null);
    };
    addEventListener("pointermove", move);
    addEventListener("pointerup", up);
  };

  const onMenu = (i: number) => (a: "view" | "edit" | "duplicate" | "remove") => {
    if (a === "view") setView(i);
    else if (a === "edit") { setEditing(i); setSettings(false); }
    else if (a === "remove") { setPanels(panels.filter((_, k) => k !== i)); setEditing(null); }
    else if (a === "duplicate") {
      const p = structuredClone(panels[i]);
      const g = cells.find((c) => c.index === i);
      if (g) p.grid = { x: g.x, y: g.y + g.h, w: g.w, h: g.h };
      const next = [...panels.slice(0, i + 1), p, ...panels.slice(i + 1)];
      setPanels(movePanel(next, i + 1, p.grid ?? { x: 0, y: 0, w: 12, h: 8 }));
    }
  };

  const addPanel = (type: "timeseries" | "row") => {
    const bottom = layoutHeight(cells);
    const p: Panel = type === "row"
      ? { type: "row", title: "Row", grid: { x: 0, y: bottom, w: 24, h: 1 } }
      : { type: "timeseries", title: "New panel", grid: { x: 0, y: bottom, w: 12, h: 8 }, targets: [{ expr: "", ref: "A" }] };
    setPanels([...panels, p]);
    if (type !== "row") { setEditing(panels.length); setSettings(false); }
  };

  const save = async () => {
    setStatus(null);
    const body = clean({ ...dash, panels: dash.panels.map((p) => clean(p)) });
    try {
      if (isNew || !meta) {
        const r = await createDashboard(body, message);
        setStatus({ ok: true, text: `Saved as ${r.uid} (version ${r.version})` });
        setDirty(false);
        location.hash = href("d", [r.uid]);
        return;
      }
      const r = await saveDashboard(uid, body, meta.version, message);
      setMeta({ ...meta, version: r.version, source: "db" });
      setDirty(false);
      setMessage("");
      setStatus({ ok: true, text: `Saved version ${r.version}` });
      if (versions) listVersions(uid).then(setVersions, () => {});
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        setStatus({ ok: false, text: isNew ? `A dashboard with this uid already exists: ${e.message}` : `Version conflict: someone saved this dashboard after you opened it (${e.message}). Reload to see their changes, or export yours first.` });
      } else setStatus({ ok: false, text: e instanceof Error ? e.message : String(e) });
    }
  };

  const restore = async (n: number) => {
    if (!meta) return;
    try {
      const d = await getVersion(uid, n);
      const r = await saveDashboard(uid, d, meta.version, `restore version ${n}`);
      setDash(d);
      setMeta({ ...meta, version: r.version });
      setDirty(false);
      setStatus({ ok: true, text: `Restored version ${n} as version ${r.version}` });
      setVersions(await listVersions(uid));
    } catch (e) {
      setStatus({ ok: false, text: e instanceof Error ? e.message : String(e) });
    }
  };

  const toggleRow = (i: number) => {
    const next = panels.map((p, k) => (k === i ? { ...p, collapsed: !p.collapsed } : p));
    setDash({ ...dash, panels: next });
    if (edit) setDirty(true);
  };

  const setVar = (name: string, values: string[]) => {
    const m = new Map(wanted);
    m.set(name, values);
    setWanted(m);
  };

  const toolbar = (
    <div class="dash-toolbar">
      <div class="dash-title">
        <a href="#/dashboards" class="muted">Dashboards</a> / <b>{dash.title}</b>
        {meta && <span class={`badge badge-${meta.source}`}>{meta.source}</span>}
        {dirty && <span class="muted small"> (unsaved)</span>}
      </div>
      <div class="dash-actions">
        {view !== null && <button onClick={() => setView(null)}>← Back to dashboard</button>}
        <button title="Earlier" onClick={() => shiftRange(-0.5)}>‹</button>
        <TimePicker from={effFrom} to={effTo} onChange={(f, t) => { setFrom(f); setTo(t); setTick((x) => x + 1); }} />
        <button title="Later" onClick={() => shiftRange(0.5)}>›</button>
        <button title="Zoom out" onClick={zoomOut}>−</button>
        <button title="Refresh now" onClick={() => setTick((t) => t + 1)}>⟳</button>
        <select title="Auto-refresh" value={effRefresh === "off" ? "" : effRefresh} onChange={(e) => setRefresh((e.target as HTMLSelectElement).value || "off")}>
          {[...new Set([...REFRESH_OPTIONS, effRefresh === "off" ? "" : effRefresh])].map((r) => <option value={r}>{r === "" ? "Off" : r}</option>)}
        </select>
        {!edit ? (
          <button onClick={() => setEdit(true)}>Edit</button>
        ) : (
          <>
            <button onClick={() => addPanel("timeseries")}>+ Panel</button>
            <button onClick={() => addPanel("row")}>+ Row</button>
            <button onClick={() => { setSettings(!settings); setEditing(null); }}>Settings</button>
            <input class="save-msg" placeholder="Change note" value={message} onInput={(e) => setMessage((e.target as HTMLInputElement).value)} />
            <button class="primary" onClick={save}>Save</button>
            <button onClick={() => { setEdit(false); setEditing(null); setSettings(false); }}>Done</button>
          </>
        )}
        {meta && (
          <>
            <button onClick={() => (versions ? setVersions(null) : listVersions(uid).then(setVersions, (e) => setStatus({ ok: false, text: String(e.message ?? e) })))}>Versions</button>
            <a class="button" href={exportUrl(uid, "yaml")} download={`${uid}.yml`}>YAML</a>
            <a class="button" href={exportUrl(uid, "json")} download={`${uid}.json`}>JSON</a>
          </>
        )}
      </div>
    </div>
  );

  const content = view !== null && panels[view] ? (
    <div class="view-panel" ref={gridRef}>
      {width > 0 && (
        <PanelView
          key={`view-${view}`}
          panel={panels[view]}
          index={view}
          width={width}
          height={Math.max(300, innerHeight - 170)}
          ctx={ctx}
          edit={false}
          eager
          onDrawn={onDrawn}
          onMenu={(a) => a === "view" && setView(null)}
        />
      )}
    </div>
  ) : (
    <div class="grid" ref={gridRef} style={narrow ? undefined : { height: `${layoutHeight(cells) * (ROW_PX + GAP_PX)}px` }}>
      {width > 0 && varsReady && visibleCells.map((c) => {
        const p = panels[c.index];
        let pos = px(c);
        if (narrow) pos = { left: 0, top: 0, width, height: c.row ? ROW_PX : Math.max(200, c.h * ROW_PX) };
        if (drag && drag.index === c.index) {
          pos = drag.kind === "move"
            ? { ...pos, left: pos.left + drag.dx, top: pos.top + drag.dy }
            : { ...pos, width: Math.max(colW, pos.width + drag.dx), height: Math.max(ROW_PX * 2, pos.height + drag.dy) };
        }
        const style = narrow ? { position: "relative" as const, marginBottom: `${GAP_PX}px` } : { position: "absolute" as const, left: `${pos.left}px`, top: `${pos.top}px`, zIndex: drag?.index === c.index ? 10 : undefined };
        if (c.row) {
          return (
            <div class="grid-row" style={{ ...style, width: `${pos.width}px`, height: `${ROW_PX}px` }}>
              <button class="row-toggle" onClick={() => toggleRow(c.index)}>{p.collapsed ? "▸" : "▾"} {p.title}</button>
              {p.collapsed && <span class="muted small">({panelsInRow(panels, c.index)} panels)</span>}
              {edit && <span class="row-actions"><button onClick={() => setEditing(c.index)}>✎</button><button onClick={() => setPanels(panels.filter((_, k) => k !== c.index))}>✕</button></span>}
            </div>
          );
        }
        return (
          <div style={style}>
            <PanelView
              key={`p-${c.index}-${p.type}`}
              panel={p}
              index={c.index}
              width={pos.width}
              height={pos.height}
              ctx={ctx}
              edit={edit}
              onDrawn={onDrawn}
              onMenu={onMenu(c.index)}
              onDragStart={edit && !narrow ? startDrag(c.index, c) : undefined}
            />
          </div>
        );
      })}
    </div>
  );

  return (
    <section class={`dashboard ${edit ? "edit-mode" : ""}`} data-uid={uid}>
      {toolbar}
      {status && <div class={status.ok ? "notice" : "panel-error"}>{status.text}</div>}
      <VariableBar vars={vars} errors={varErrors} onChange={setVar} />
      <div class="dash-body">
        <div class="dash-main">{content}</div>
        {edit && editing !== null && panels[editing] && (
          <PanelEditor panel={panels[editing]} onChange={(p) => setPanels(panels.map((x, k) => (k === editing ? p : x)))} onClose={() => setEditing(null)} />
        )}
        {edit && settings && <SettingsEditor dash={dash} isNew={isNew} onChange={update} onClose={() => setSettings(false)} />}
        {versions && (
          <aside class="side-form">
            <div class="side-head"><b>Versions</b><button onClick={() => setVersions(null)}>Close</button></div>
            {versions.length === 0 && <p class="muted">No saved versions (built-in and file dashboards get versions once saved from the UI).</p>}
            <table class="data">
              <tbody>
                {versions.map((v) => (
                  <tr>
                    <td>v{v.version}</td>
                    <td class="muted">{v.updated ? new Date(v.updated).toLocaleString() : ""}</td>
                    <td>{v.message}</td>
                    <td>{v.version !== meta?.version && <button onClick={() => restore(v.version)}>Restore</button>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </aside>
        )}
      </div>
    </section>
  );
}

function panelsInRow(panels: Panel[], row: number): number {
  let n = 0;
  for (let i = row + 1; i < panels.length && panels[i].type !== "row"; i++) n++;
  return n;
}

