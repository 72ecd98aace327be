// Edit-mode side forms: the panel editor (title, type, queries, unit, thresholds, legend, …) and
// the dashboard settings (title, tags, refresh, default time, variables).
import type { Dashboard, Legend, Panel, PanelType, Target, Threshold, Variable, VariableType } from "./model";
import { PANEL_TYPES } from "./model";
import { UNITS } from "./units";

type Upd<T> = (patch: Partial<T>) => void;

function num(v: string): number | undefined {
  if (v.trim() === "") return undefined;
  const n = Number(v);
  return isNaN(n) ? undefined : n;
}

function Field({ label, children }: { label: string; children: preact.ComponentChildren }) {
  return <label class="field"><span>{label}</span>{children}</label>;
}

const val = (e: Event) => (e.target as HTMLInputElement).value;
const chk = (e: Event) => (e.target as HTMLInputElement).checked;

function Targets({ targets, onChange }: { targets: Target[]; onChange: (t: Target[]) => void }) {
  const set = (i: number, patch: Partial<Target>) => onChange(targets.map((t, k) => (k === i ? { ...t, ...patch } : t)));
  return (
    <div class="targets">
      {targets.map((t, i) => (
        <div class="target">
          <div class="target-head">
            <b>{t.ref || String.fromCharCode(65 + i)}</b>
            <button onClick={() => onChange(targets.filter((_, k) => k !== i))}>Remove</button>
          </div>
          <textarea class="expr" rows={3} value={t.expr} onChange={(e) => set(i, { expr: val(e) })} placeholder="PromQL expression" />
          <div class="row-fields">
            <Field label="Legend"><input value={t.legend ?? ""} onInput={(e) => set(i, { legend: val(e) || undefined })} placeholder="{{instance}}" /></Field>
            <Field label="Min step"><input value={t.interval ?? ""} onChange={(e) => set(i, { interval: val(e) || undefined })} placeholder="30s" size={6} /></Field>
            <Field label="Format">
              <select value={t.format ?? "time_series"} onChange={(e) => set(i, { format: val(e) as Target["format"] })}>
                <option value="time_series">time series</option><option value="table">table</option><option value="heatmap">heatmap</option>
              </select>
            </Field>
            <Field label="Instant"><input type="checkbox" checked={!!t.instant} onChange={(e) => set(i, { instant: chk(e) || undefined })} /></Field>
          </div>
        </div>
      ))}
      <button onClick={() => onChange([...targets, { expr: "", ref: nextRef(targets) }])}>+ Query</button>
    </div>
  );
}

function nextRef(targets: Target[]): string {
  for (let i = 0; i < 26; i++) {
    const r = String.fromCharCode(65 + i);
    if (!targets.some((t) => t.ref === r)) return r;
  }
  return `Q${targets.length}`;
}

function Thresholds({ steps, onChange }: { steps: Threshold[]; onChange: (t: Threshold[]) => void }) {
  const list = steps.length ? steps : [{ value: null, color: "green" }];
  const set = (i: number, patch: Partial<Threshold>) => onChange(list.map((t, k) => (k === i ? { ...t, ...patch } : t)));
  return (
    <div class="thresholds">
      {list.map((t, i) => (
        <div class="threshold">
          <input type="color" value={/^#[0-9a-f]{6}$/i.test(t.color) ? t.color : "#73bf69"} onChange={(e) => set(i, { color: val(e) })} />
          <input value={t.color} size={10} onChange={(e) => set(i, { color: val(e) })} />
          {i === 0 ? <span class="muted">Base</span> : <input value={t.value ?? ""} size={8} onChange={(e) => set(i, { value: num(val(e)) ?? 0 })} />}
          {i > 0 && <button onClick={() => onChange(list.filter((_, k) => k !== i))}>✕</button>}
        </div>
      ))}
      <button onClick={() => {
        const last = list[list.length - 1]?.value ?? 0;
        onChange([...list, { value: (last as number) + 10, color: "red" }]);
      }}>+ Threshold</button>
    </div>
  );
}

export function PanelEditor({ panel, onChange, onClose }: { panel: Panel; onChange: (p: Panel) => void; onClose: () => void }) {
  const up: Upd<Panel> = (patch) => onChange({ ...panel, ...patch });
  const legend: Legend = panel.legend ?? { show: true };
  const isRow = panel.type === "row";
  return (
    <aside class="side-form">
      <div class="side-head"><b>Edit panel</b><button onClick={onClose}>Close</button></div>
      <Field label="Title"><input value={panel.title} onInput={(e) => up({ title: val(e) })} /></Field>
      {!isRow && (
        <>
          <Field label="Type">
            <select value={panel.type} onChange={(e) => up({ type: val(e) as PanelType })}>
              {PANEL_TYPES.map((t) => <option value={t}>{t}</option>)}
            </select>
          </Field>
          <Field label="Description"><input value={panel.description ?? ""} onInput={(e) => up({ description: val(e) || undefined })} /></Field>
          {panel.type === "text" ? (
            <Field label="Markdown"><textarea rows={10} value={panel.text ?? ""} onInput={(e) => up({ text: val(e) })} /></Field>
          ) : (
            <>
              <h4>Queries</h4>
              <Targets targets={panel.targets ?? []} onChange={(targets) => up({ targets })} />
              <h4>Display</h4>
              <div class="row-fields">
                <Field label="Unit">
                  <input list="units" value={panel.unit ?? ""} onChange={(e) => up({ unit: val(e) || undefined })} size={12} />
                  <datalist id="units">{UNITS.map((u) => <option value={u} />)}</datalist>
                </Field>
                <Field label="Decimals"><input value={panel.decimals ?? ""} size={4} onChange={(e) => up({ decimals: num(val(e)) })} /></Field>
                <Field label="Min"><input value={panel.min ?? ""} size={6} onChange={(e) => up({ min: num(val(e)) })} /></Field>
                <Field label="Max"><input value={panel.max ?? ""} size={6} onChange={(e) => up({ max: num(val(e)) })} /></Field>
              </div>
              {panel.type === "timeseries" && (
                <div class="row-fields">
                  <Field label="Stack"><input type="checkbox" checked={!!panel.stack} onChange={(e) => up({ stack: chk(e) || undefined })} /></Field>
                  <Field label="Log scale">
                    <select value={String(panel.log ?? 0)} onChange={(e) => up({ log: Number(val(e)) || undefined })}>
                      <option value="0">linear</option><option value="2">log 2</option><option value="10">log 10</option>
                    </select>
                  </Field>
                  <Field label="Legend"><input type="checkbox" checked={legend.show !== false} onChange={(e) => up({ legend: { ...legend, show: chk(e) } })} /></Field>
                  <Field label="Placement">
                    <select value={legend.placement ?? "bottom"} onChange={(e) => up({ legend: { ...legend, placement: val(e) as Legend["placement"] } })}>
                      <option value="bottom">bottom</option><option value="right">right</option>
                    </select>
                  </Field>
                  <Field label="Calcs"><input value={(legend.calcs ?? []).join(",")} size={14} placeholder="mean,max,last" onChange={(e) => up({ legend: { ...legend, calcs: val(e).split(/\s*,\s*/).filter(Boolean) } })} /></Field>
                </div>
              )}
              {["stat", "gauge", "bargauge", "barchart", "pie"].includes(panel.type) && (
                <div class="row-fields">
                  <Field label="Reduce">
                    <select value={panel.reduce ?? "last"} onChange={(e) => up({ reduce: val(e) as Panel["reduce"] })}>
                      {["last", "mean", "max", "min", "sum", "first", "count"].map((r) => <option value={r}>{r}</option>)}
                    </select>
                  </Field>
                  {panel.type === "stat" && <Field label="Sparkline"><input type="checkbox" checked={panel.sparkline !== false} onChange={(e) => up({ sparkline: chk(e) })} /></Field>}
                  {(panel.type === "bargauge" || panel.type === "barchart") && (
                    <Field label="Orientation">
                      <select value={panel.orientation ?? "horizontal"} onChange={(e) => up({ orientation: val(e) as Panel["orientation"] })}>
                        <option value="horizontal">horizontal</option><option value="vertical">vertical</option>
                      </select>
                    </Field>
                  )}
                </div>
              )}
              <h4>Thresholds</h4>
              <Thresholds steps={panel.thresholds ?? []} onChange={(thresholds) => up({ thresholds })} />
            </>
          )}
        </>
      )}
    </aside>
  );
}

function VariableEditor({ v, onChange, onRemove }: { v: Variable; onChange: (v: Variable) => void; onRemove: () => void }) {
  const up: Upd<Variable> = (patch) => onChange({ ...v, ...patch });
  const t = v.type ?? "query";
  return (
    <div class="var-edit">
      <div class="row-fields">
        <Field label="Name"><input value={v.name} size={12} onInput={(e) => up({ name: val(e) })} /></Field>
        <Field label="Label"><input value={v.label ?? ""} size={12} onInput={(e) => up({ label: val(e) || undefined })} /></Field>
        <Field label="Type">
          <select value={t} onChange={(e) => up({ type: val(e) as VariableType })}>
            {["query", "custom", "interval", "constant", "textbox"].map((x) => <option value={x}>{x}</option>)}
          </select>
        </Field>
        <button onClick={onRemove}>Remove</button>
      </div>
      {(t === "query" || t === "constant" || t === "textbox") && (
        <Field label={t === "query" ? "Query" : "Value"}>
          <input value={v.query ?? ""} onChange={(e) => up({ query: val(e) || undefined })} placeholder={t === "query" ? "label_values(up, instance)" : ""} />
        </Field>
      )}
      {(t === "custom" || t === "interval") && (
        <Field label="Options (comma separated)">
          <input value={(v.options ?? []).join(",")} onChange={(e) => up({ options: val(e).split(/\s*,\s*/).filter(Boolean) })} />
        </Field>
      )}
      {t === "query" && <Field label="Regex"><input value={v.regex ?? ""} onChange={(e) => up({ regex: val(e) || undefined })} placeholder="/(.*):\d+/" /></Field>}
      {t !== "constant" && t !== "textbox" && (
        <div class="row-fields">
          <Field label="Multi"><input type="checkbox" checked={!!v.multi} onChange={(e) => up({ multi: chk(e) || undefined })} /></Field>
          <Field label="Include All"><input type="checkbox" checked={!!v.include_all} onChange={(e) => up({ include_all: chk(e) || undefined })} /></Field>
          <Field label="All value"><input value={v.all_value ?? ""} size={8} onChange={(e) => up({ all_value: val(e) || undefined })} /></Field>
          <Field label="Hide"><input type="checkbox" checked={!!v.hide} onChange={(e) => up({ hide: chk(e) || undefined })} /></Field>
        </div>
      )}
    </div>
  );
}

export function SettingsEditor({ dash, isNew, onChange, onClose }: { dash: Dashboard; isNew: boolean; onChange: (d: Dashboard) => void; onClose: () => void }) {
  const up: Upd<Dashboard> = (patch) => onChange({ ...dash, ...patch });
  const vars = dash.variables ?? [];
  return (
    <aside class="side-form">
      <div class="side-head"><b>Dashboard settings</b><button onClick={onClose}>Close</button></div>
      <Field label="Title"><input value={dash.title} onInput={(e) => up({ title: val(e) })} /></Field>
      {isNew && <Field label="UID"><input value={dash.uid ?? ""} onInput={(e) => up({ uid: val(e) || undefined })} placeholder="derived from the title" /></Field>}
      <Field label="Description"><input value={dash.description ?? ""} onInput={(e) => up({ description: val(e) || undefined })} /></Field>
      <Field label="Tags (comma separated)"><input value={(dash.tags ?? []).join(", ")} onChange={(e) => up({ tags: val(e).split(/\s*,\s*/).filter(Boolean) })} /></Field>
      <div class="row-fields">
        <Field label="Refresh"><input value={dash.refresh ?? ""} size={6} onChange={(e) => up({ refresh: val(e) || undefined })} placeholder="30s" /></Field>
        <Field label="From"><input value={dash.time?.from ?? "now-6h"} size={10} onChange={(e) => up({ time: { from: val(e), to: dash.time?.to ?? "now" } })} /></Field>
        <Field label="To"><input value={dash.time?.to ?? "now"} size={10} onChange={(e) => up({ time: { from: dash.time?.from ?? "now-6h", to: val(e) } })} /></Field>
      </div>
      <h4>Variables</h4>
      {vars.map((v, i) => (
        <VariableEditor
          v={v}
          onChange={(nv) => up({ variables: vars.map((x, k) => (k === i ? nv : x)) })}
          onRemove={() => up({ variables: vars.filter((_, k) => k !== i) })}
        />
      ))}
      <button onClick={() => up({ variables: [...vars, { name: `var${vars.length + 1}`, type: "query", query: "" }] })}>+ Variable</button>
    </aside>
  );
}
