// Time ranges as the user writes them ("now-6h", "now", an RFC 3339 instant or unix seconds) and
// their resolution to unix seconds. Shared by Explore, dashboards and the time picker, and kept
// free of DOM code so it can be unit-tested.

/** A time range as written: each end is "now", "now-<duration>", "now/d"-free relative or absolute. */
export interface TimeRange {
  from: string;
  to: string;
}

export const DEFAULT_RANGE: TimeRange = { from: "now-1h", to: "now" };

const UNIT_SECONDS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 604800,
  y: 31536000,
};

/** Parses a Prometheus duration ("5m", "1h30m", "250ms") to seconds; null when malformed. */
export function parseDuration(s: string): number | null {
  const t = s.trim();
  if (t === "") return null;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/y;
  let total = 0;
  let pos = 0;
  while (pos < t.length) {
    re.lastIndex = pos;
    const m = re.exec(t);
    if (!m) return null;
    total += parseFloat(m[1]) * UNIT_SECONDS[m[2]];
    pos = re.lastIndex;
  }
  return total;
}

/** Formats seconds as a compact Prometheus duration ("1h30m", "15s", "500ms"). */
export function formatDuration(sec: number): string {
  if (!isFinite(sec) || sec <= 0) return "0s";
  if (sec < 1) return `${Math.round(sec * 1000)}ms`;
  let rest = Math.round(sec);
  let out = "";
  for (const [u, n] of [["y", 31536000], ["w", 604800], ["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    if (rest >= n) {
      const k = Math.floor(rest / n);
      out += `${k}${u}`;
      rest -= k * n;
    }
  }
  return out;
}

/**
 * Resolves one end of a range to unix seconds at `now` (unix seconds): "now", "now-5m",
 * "now+1h", unix seconds ("1700000000" or with fraction) or an ISO 8601 / RFC 3339 date.
 * Returns null for anything else.
 */
export function resolveTime(s: string, now: number): number | null {
  const t = s.trim();
  if (t === "now") return now;
  const rel = /^now\s*([+-])\s*(.+)$/.exec(t);
  if (rel) {
    const d = parseDuration(rel[2]);
    if (d === null) return null;
    return rel[1] === "-" ? now - d : now + d;
  }
  if (/^\d+(\.\d+)?$/.test(t)) {
    const n = parseFloat(t);
    // Milliseconds are accepted too (Grafana links carry them).
    return n > 1e11 ? n / 1000 : n;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
    const ms = Date.parse(t.length === 10 ? t + "T00:00:00Z" : t);
    return isNaN(ms) ? null : ms / 1000;
  }
  return null;
}

/** Resolves a range to [start, end] unix seconds; throws with a message naming the bad end. */
export function resolveRange(r: TimeRange, now: number = Date.now() / 1000): [number, number] {
  const from = resolveTime(r.from, now);
  if (from === null) throw new Error(`invalid "from" time: ${r.from}`);
  const to = resolveTime(r.to, now);
  if (to === null) throw new Error(`invalid "to" time: ${r.to}`);
  if (from >= to) throw new Error(`"from" (${r.from}) must be before "to" (${r.to})`);
  return [from, to];
}

/** Whether a range moves with the clock (either end relative to now). */
export function isRelative(r: TimeRange): boolean {
  return r.from.trim().startsWith("now") || r.to.trim().startsWith("now");
}

/**
 * The step for a range query: about `points` points across the range, rounded up to a "nice"
 * step and never below `min` seconds (Grafana's $__interval logic).
 */
export function autoStep(start: number, end: number, points = 250, min = 1): number {
  const raw = Math.max((end - start) / points, min);
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  for (const n of nice) if (n >= raw) return n;
  return Math.ceil(raw / 86400) * 86400;
}

/** Human text for a range: "Last 1 hour" for presets, otherwise "from to to". */
export function describeRange(r: TimeRange): string {
  const p = RELATIVE_PRESETS.find((x) => x.from === r.from && r.to === "now");
  if (p) return p.label;
  const fmt = (s: string) => {
    if (s.startsWith("now")) return s;
    const v = resolveTime(s, 0);
    return v === null ? s : formatDateTime(v);
  };
  return `${fmt(r.from)} to ${fmt(r.to)}`;
}

/** "2026-11-23 14:05:00" in local time. */
export function formatDateTime(sec: number): string {
  const d = new Date(sec * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export const RELATIVE_PRESETS: { from: string; label: string }[] = [
  { from: "now-5m", label: "Last 5 minutes" },
  { from: "now-15m", label: "Last 15 minutes" },
  { from: "now-30m", label: "Last 30 minutes" },
  { from: "now-1h", label: "Last 1 hour" },
  { from: "now-3h", label: "Last 3 hours" },
  { from: "now-6h", label: "Last 6 hours" },
  { from: "now-12h", label: "Last 12 hours" },
  { from: "now-24h", label: "Last 24 hours" },
  { from: "now-2d", label: "Last 2 days" },
  { from: "now-7d", label: "Last 7 days" },
  { from: "now-30d", label: "Last 30 days" },
];

export const REFRESH_OPTIONS = ["", "5s", "10s", "30s", "1m", "5m", "15m", "1h"];
