// Template variables: resolving their options (label_values, query_result, custom, interval,
// constant, textbox), Grafana's regex filter, and interpolation of $var / ${var} / [[var]] and the
// built-ins $__interval, $__rate_interval, $__range into panel queries the way Grafana's
// Prometheus data source does (multi-value and "All" become a regex alternation for =~).
import type { Variable } from "./model";
import { formatDuration, parseDuration } from "./timerange";

/** The value Grafana stores for a selected "All" option. */
export const ALL = "$__all";

/** A variable's resolved state: its options and the current selection. */
export interface VarState {
  def: Variable;
  options: string[];
  /** Selected values; [ALL] when "All" is selected. */
  current: string[];
}

export interface Builtins {
  /** Step in seconds for the panel ($__interval). */
  intervalSec: number;
  /** Dashboard range in seconds ($__range). */
  rangeSec: number;
  /** Scrape interval assumed for $__rate_interval (default 15s). */
  scrapeSec?: number;
}

/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval). */
export function rateInterval(intervalSec: number, scrapeSec = 15): number {
  return Math.max(intervalSec + scrapeSec, 4 * scrapeSec);
}

/**
 * Step for a range query: range / width points, at least the target's min interval and 1 s,
 * rounded up to a whole second (or millisecond below 1 s) so $__interval stays readable.
 */
export function computeStep(rangeSec: number, widthPx: number, minInterval = ""): number {
  const raw = rangeSec / Math.max(1, Math.floor(widthPx));
  const min = minInterval ? parseDuration(minInterval) : NaN;
  const s = Math.max(raw, isNaN(min) ? 0 : min, 0.001);
  return s >= 1 ? Math.ceil(s) : Math.ceil(s * 1000) / 1000;
}

/** Escapes a value for a regex inside a PromQL double-quoted string (backslashes doubled). */
export function regexEscape(v: string): string {
  return v.replace(/\\/g, "\\\\\\\\").replace(/[$^*/+?.()|[\]{}]/g, "\\\\$&").replace(/"/g, '\\"');
}

/** Escapes a value for a PromQL string literal. */
function stringEscape(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/'/g, "\\'");
}

/** The text a variable contributes to a query, like Grafana's Prometheus interpolateQueryExpr. */
export function formatVar(s: VarState, format?: string): string {
  const multiLike = !!(s.def.multi || s.def.include_all);
  let values = s.current;
  if (values.length === 1 && values[0] === ALL) {
    if (s.def.all_value !== undefined && s.def.all_value !== "" && format === undefined) return s.def.all_value;
    values = s.options;
  }
  switch (format) {
    case "raw": return values.join(",");
    case "csv": return values.join(",");
    case "pipe": return values.join("|");
    case "text": return values.join(" + ");
    case "regex": {
      const e = values.map(regexEscape);
      return e.length === 1 ? e[0] : `(${e.join("|")})`;
    }
  }
  if (!multiLike) return values.length ? stringEscape(values[0]) : "";
  const e = values.map(regexEscape);
  if (e.length === 0) return "";
  return e.length === 1 ? e[0] : `(${e.join("|")})`;
}

const VAR_RE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}/g;

/** Replaces variable references in `text`; unknown names are left as written. */
export function interpolate(text: string, vars: Map<string, VarState>, b?: Builtins): string {
  return text.replace(VAR_RE, (whole, n1?: string, n2?: string, f2?: string, n3?: string, f3?: string) => {
    const name = n1 ?? n2 ?? n3 ?? "";
    const format = f2 ?? f3;
    if (b) {
      const scrape = b.scrapeSec ?? 15;
      switch (name) {
        case "__interval": return formatDuration(b.intervalSec);
        case "__interval_ms": return String(Math.round(b.intervalSec * 1000));
        case "__rate_interval": return formatDuration(rateInterval(b.intervalSec, scrape));
        case "__range": return `${Math.round(b.rangeSec)}s`;
        case "__range_s": return String(Math.round(b.rangeSec));
        case "__range_ms": return String(Math.round(b.rangeSec * 1000));
      }
    }
    const s = vars.get(name);
    return s ? formatVar(s, format) : whole;
  });
}

/** Parses Grafana's regex option: "/re/flags" or a bare pattern. Null if empty or invalid. */
export function parseVarRegex(src: string | undefined): RegExp | null {
  if (!src) return null;
  const m = /^\/(.*)\/([gimsuy]*)$/s.exec(src);
  try {
    return m ? new RegExp(m[1], m[2].replace("g", "")) : new RegExp(src);
  } catch {
    return null;
  }
}

/**
 * Applies the variable regex to raw option values: values that don't match are dropped; a
 * capture group (or the named group "value"/"text") replaces the value. Result is de-duplicated.
 */
export function applyRegex(values: string[], regex: string | undefined): string[] {
  const re = parseVarRegex(regex);
  const out: string[] = [];
  const seen = new Set<string>();
  for (const v of values) {
    let r: string | undefined = v;
    if (re) {
      const m = re.exec(v);
      if (!m) continue;
      r = m.groups?.value ?? m.groups?.text ?? (m.length > 1 ? m[1] : v);
      if (r === undefined) continue;
    }
    if (!seen.has(r)) {
      seen.add(r);
      out.push(r);
    }
  }
  return out;
}

export type VarQuery =
  | { kind: "label_values"; label: string; match?: string }
  | { kind: "query_result"; expr: string }
  | { kind: "metrics"; regex: string }
  | { kind: "invalid"; error: string };

/** Splits at the last top-level comma (outside braces, parentheses and quotes). */
function splitLastComma(s: string): [string, string] | null {
  let depth = 0;
  let quote = "";
  let last = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
      continue;
    }
    if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "{" || c === "(" || c === "[") depth++;
    else if (c === "}" || c === ")" || c === "]") depth--;
    else if (c === "," && depth === 0) last = i;
  }
  return last < 0 ? null : [s.slice(0, last).trim(), s.slice(last + 1).trim()];
}

/** Parses a query variable's query: label_values(m, l), label_values(l), query_result(e), metrics(re). */
export function parseVarQuery(q: string): VarQuery {
  const t = q.trim();
  const m = /^(label_values|query_result|metrics)\s*\(([\s\S]*)\)\s*$/.exec(t);
  if (!m) return { kind: "invalid", error: `unsupported variable query: ${t}` };
  const arg = m[2].trim();
  if (m[1] === "query_result") return { kind: "query_result", expr: arg };
  if (m[1] === "metrics") return { kind: "metrics", regex: arg };
  const parts = splitLastComma(arg);
  if (!parts) {
    if (!/^[a-zA-Z_]\w*$/.test(arg)) return { kind: "invalid", error: `bad label name in ${t}` };
    return { kind: "label_values", label: arg };
  }
  if (!/^[a-zA-Z_]\w*$/.test(parts[1])) return { kind: "invalid", error: `bad label name in ${t}` };
  return { kind: "label_values", label: parts[1], match: parts[0] };
}

/** Formats an instant-query sample like Grafana's query_result: `name{a="b"} value timestampMs`. */
export function queryResultLine(metric: Record<string, string>, value: string, ts: number): string {
  const { __name__: name = "", ...rest } = metric;
  const labels = Object.entries(rest).map(([k, v]) => `${k}="${v}"`).join(", ");
  return `${name}{${labels}} ${value} ${Math.round(ts * 1000)}`;
}

/** Options of the variable kinds that need no server: custom, interval, constant, textbox. */
export function staticOptions(v: Variable): string[] {
  switch (v.type) {
    case "custom":
    case "interval":
      if (v.options && v.options.length) return v.options;
      return (v.query ?? "").split(/\s*,\s*/).filter((x) => x !== "");
    case "constant":
      return [v.query ?? v.options?.[0] ?? v.current?.[0] ?? ""];
    case "textbox":
      return [];
    default:
      return [];
  }
}

/** Picks the current selection: the wanted values that exist (or ALL), else the first option. */
export function pickCurrent(v: Variable, options: string[], wanted: string[] | undefined): string[] {
  if (v.type === "textbox") return [wanted?.[0] ?? v.current?.[0] ?? v.query ?? ""];
  if (v.type === "constant") return options.slice(0, 1);
  const want = wanted && wanted.length ? wanted : (v.current ?? []);
  if (want.length === 1 && (want[0] === ALL || want[0] === "All") && v.include_all) return [ALL];
  const ok = want.filter((w) => options.includes(w));
  if (ok.length) return v.multi ? ok : ok.slice(0, 1);
  if (v.include_all && options.length !== 1) return [ALL];
  return options.length ? [options[0]] : [];
}
