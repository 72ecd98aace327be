// The dashboard model shared with the backend (crates/dashboards, see /api/sextant/dashboards).
// Field names follow the YAML/JSON file format exactly: the backend rejects unknown keys, so the UI
// never adds fields of its own to what it saves.

export type PanelType =
  | "row" | "timeseries" | "stat" | "gauge" | "bargauge" | "barchart" | "pie" | "heatmap" | "table" | "text";

export const PANEL_TYPES: PanelType[] = [
  "timeseries", "stat", "gauge", "bargauge", "barchart", "pie", "heatmap", "table", "text",
];

export type VariableType = "query" | "custom" | "interval" | "constant" | "textbox";

export interface Variable {
  name: string;
  label?: string;
  type?: VariableType;
  query?: string;
  regex?: string;
  multi?: boolean;
  include_all?: boolean;
  all_value?: string;
  options?: string[];
  current?: string[];
  hide?: boolean;
}

export interface Grid { x: number; y: number; w: number; h: number }

export interface Target {
  expr: string;
  legend?: string;
  instant?: boolean;
  format?: "time_series" | "table" | "heatmap";
  interval?: string;
  ref?: string;
}

export interface Threshold { value: number | null; color: string }

export type Reduce = "last" | "mean" | "max" | "min" | "sum" | "first" | "count";

export interface Legend { show?: boolean; placement?: "bottom" | "right"; calcs?: string[] }

export interface Override {
  match: { name: string };
  unit?: string;
  color?: string;
  display_name?: string;
  hide?: boolean;
}

export interface Panel {
  type: PanelType;
  title: string;
  description?: string;
  grid?: Grid;
  collapsed?: boolean;
  targets?: Target[];
  unit?: string;
  decimals?: number;
  min?: number;
  max?: number;
  thresholds?: Threshold[];
  stack?: boolean;
  log?: number;
  legend?: Legend;
  reduce?: Reduce;
  sparkline?: boolean;
  orientation?: "horizontal" | "vertical";
  text?: string;
  overrides?: Override[];
}

export interface Dashboard {
  uid?: string;
  title: string;
  description?: string;
  tags?: string[];
  refresh?: string;
  time?: { from: string; to: string };
  variables?: Variable[];
  panels: Panel[];
}

export interface DashboardMeta {
  source: "builtin" | "file" | "db";
  path?: string;
  version: number;
  updated?: string;
  provisioned?: boolean;
}

export interface DashboardSummary {
  uid: string;
  title: string;
  tags?: string[];
  source: "builtin" | "file" | "db";
  path?: string;
  version?: number;
  updated?: string;
}

export interface ImportReport { panel_id?: number; title?: string; type?: string; problems: string[] }
export interface ImportResult { dashboard: Dashboard; report: ImportReport[]; saved_uid?: string }
export interface VersionInfo { version: number; updated?: string; message?: string }

/** Removes keys whose value is undefined, "" or an empty list, so saved documents stay minimal. */
export function clean<T>(v: T): T {
  if (Array.isArray(v)) return v.map(clean) as unknown as T;
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined || x === "" || (Array.isArray(x) && x.length === 0 && k !== "panels")) continue;
      out[k] = clean(x);
    }
    return out as T;
  }
  return v;
}
