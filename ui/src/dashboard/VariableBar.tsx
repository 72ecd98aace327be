// The row of variable pickers under the dashboard toolbar: selects (single or multi with "All")
// for query/custom/interval variables and a text input for textbox variables.
import { useState } from "preact/hooks";
import { ALL, type VarState } from "./vars";

interface Props {
  vars: Map<string, VarState>;
  errors: Map<string, string>;
  onChange: (name: string, values: string[]) => void;
}

function MultiPicker({ s, onChange }: { s: VarState; onChange: (v: string[]) => void }) {
  const [open, setOpen] = useState(false);
  const isAll = s.current.length === 1 && s.current[0] === ALL;
  const label = isAll ? "All" : s.current.length ? s.current.join(" + ") : "None";
  const toggle = (v: string) => {
    if (v === ALL) return onChange([ALL]);
    const cur = isAll ? [] : s.current;
    const next = cur.includes(v) ? cur.filter((x) => x !== v) : [...cur, v];
    onChange(next.length ? next : s.def.include_all ? [ALL] : [v]);
  };
  return (
    <div class="multi-picker">
      <button class="var-value" onClick={() => setOpen(!open)} title={label}>{label} ▾</button>
      {open && (
        <div class="multi-menu" onMouseLeave={() => setOpen(false)}>
          {s.def.include_all && (
            <label><input type="checkbox" checked={isAll} onChange={() => toggle(ALL)} /> All</label>
          )}
          {s.options.map((o) => (
            <label><input type="checkbox" checked={!isAll && s.current.includes(o)} onChange={() => toggle(o)} /> {o}</label>
          ))}
        </div>
      )}
    </div>
  );
}

export function VariableBar({ vars, errors, onChange }: Props) {
  const shown = [...vars.values()].filter((s) => !s.def.hide && s.def.type !== "constant");
  if (!shown.length) return null;
  return (
    <div class="var-bar">
      {shown.map((s) => (
        <div class="var" data-var={s.def.name}>
          <span class="var-label">{s.def.label || s.def.name}</span>
          {s.def.type === "textbox" ? (
            <input
              class="var-text"
              value={s.current[0] ?? ""}
              onChange={(e) => onChange(s.def.name, [(e.target as HTMLInputElement).value])}
            />
          ) : s.def.multi ? (
            <MultiPicker s={s} onChange={(v) => onChange(s.def.name, v)} />
          ) : (
            <select
              class="var-value"
              value={s.current[0] ?? ""}
              onChange={(e) => onChange(s.def.name, [(e.target as HTMLSelectElement).value])}
            >
              {s.def.include_all && <option value={ALL}>All</option>}
              {s.options.map((o) => <option value={o}>{o}</option>)}
            </select>
          )}
          {errors.get(s.def.name) && <span class="panel-error-icon" title={errors.get(s.def.name)}>!</span>}
        </div>
      ))}
    </div>
  );
}
