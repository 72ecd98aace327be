// The time-range picker shared by Explore and dashboards: relative presets (last 5 minutes … last
// 30 days), absolute or relative from/to fields ("now-2h", "2026-11-23 10:00", unix seconds), a
// refresh button and an auto-refresh interval select.
import { useEffect, useState } from "preact/hooks";
import { REFRESH_OPTIONS, RELATIVE_PRESETS, TimeRange, describeRange, formatDateTime, resolveTime } from "../time";

export interface TimePickerProps {
  value: TimeRange;
  onChange: (r: TimeRange) => void;
  /** Auto-refresh interval ("" = off); the select is hidden when onRefreshChange is absent. */
  refresh?: string;
  onRefreshChange?: (r: string) => void;
  /** Run now (the ↻ button); hidden when absent. */
  onRefresh?: () => void;
}

/** Accepts "YYYY-MM-DD HH:MM[:SS]" as local time in addition to what resolveTime understands. */
export function normalizeTimeInput(s: string): string | null {
  const t = s.trim();
  const local = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(t);
  if (local) {
    const [, y, mo, d, h, mi, se] = local;
    const ms = new Date(+y, +mo - 1, +d, +h, +mi, +(se ?? 0)).getTime();
    return isNaN(ms) ? null : String(Math.floor(ms / 1000));
  }
  return resolveTime(t, 0) === null ? null : t;
}

function display(s: string): string {
  if (s.startsWith("now")) return s;
  const v = resolveTime(s, 0);
  return v === null ? s : formatDateTime(v);
}

export function TimePicker(props: TimePickerProps) {
  const [open, setOpen] = useState(false);
  const [from, setFrom] = useState(display(props.value.from));
  const [to, setTo] = useState(display(props.value.to));
  const [err, setErr] = useState("");
  useEffect(() => {
    setFrom(display(props.value.from));
    setTo(display(props.value.to));
  }, [props.value.from, props.value.to]);

  const apply = () => {
    const f = normalizeTimeInput(from);
    const t = normalizeTimeInput(to);
    if (f === null) return setErr(`Cannot read "from": ${from}`);
    if (t === null) return setErr(`Cannot read "to": ${to}`);
    const now = Date.now() / 1000;
    if ((resolveTime(f, now) as number) >= (resolveTime(t, now) as number)) return setErr(`"from" must be before "to"`);
    setErr("");
    setOpen(false);
    props.onChange({ from: f, to: t });
  };

  return (
    <div class="timepicker">
      <button class="tp-button" data-testid="timepicker" onClick={() => setOpen(!open)} title="Time range">
        🕓 {describeRange(props.value)}
      </button>
      {props.onRefresh && (
        <button class="tp-refresh" title="Refresh" onClick={props.onRefresh}>↻</button>
      )}
      {props.onRefreshChange && (
        <select
          class="tp-interval"
          title="Auto-refresh"
          value={props.refresh ?? ""}
          onChange={(e) => props.onRefreshChange!((e.target as HTMLSelectElement).value)}
        >
          {REFRESH_OPTIONS.map((o) => <option value={o}>{o === "" ? "Off" : o}</option>)}
        </select>
      )}
      {open && (
        <div class="tp-drop">
          <div class="tp-abs">
            <h4>Absolute or relative range</h4>
            <label>From<input name="from" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} /></label>
            <label>To<input name="to" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} onKeyDown={(e) => e.key === "Enter" && apply()} /></label>
            <p class="hint">now-6h, now, 2026-11-23 10:00 (local), RFC 3339 or unix seconds</p>
            {err && <p class="error">{err}</p>}
            <button class="primary" onClick={apply}>Apply time range</button>
          </div>
          <ul class="tp-presets">
            {RELATIVE_PRESETS.map((p) => (
              <li>
                <a
                  class={props.value.from === p.from && props.value.to === "now" ? "active" : ""}
                  onClick={() => {
                    setOpen(false);
                    props.onChange({ from: p.from, to: "now" });
                  }}
                >
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
