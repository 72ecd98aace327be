// Time helpers for dashboards: Grafana-style relative times ("now-6h", "now/d") and Prometheus
// durations ("1h30m"). The shared src/time.ts belongs to the Explore page; dashboards need only
// this small subset (NaN for invalid input, "now/d" rounding) and parse durations through it.
import { parseDuration as sharedParseDuration } from "../time";

const UNIT_S: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

/** Parses a Prometheus duration ("5m", "1h30m", "500ms") or plain seconds ("90") into seconds;
 * NaN if invalid. The duration grammar is src/time.ts's. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  return sharedParseDuration(t) ?? NaN;
}

/** Formats seconds as the shortest Prometheus duration ("1m", "90s", "1h", "500ms"). */
export function formatDuration(sec: number): string {
  if (!isFinite(sec) || sec <= 0) return "0s";
  if (sec < 1) return `${Math.max(1, Math.round(sec * 1000))}ms`;
  const s = Math.round(sec);
  for (const [u, n] of [["y", 31536000], ["w", 604800], ["d", 86400], ["h", 3600], ["m", 60]] as const) {
    if (s % n === 0) return `${s / n}${u}`;
  }
  return `${s}s`;
}

/**
 * Resolves a time expression to a Unix timestamp in seconds: "now", "now-6h", "now-1d/d", an
 * RFC 3339 date, or a number (seconds, or milliseconds when > 1e11 like Grafana URLs).
 */
export function parseTime(expr: string, now: number = Date.now() / 1000): number {
  const t = expr.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    return n > 1e11 ? n / 1000 : n;
  }
  const m = /^now(?:([+-])([0-9a-z]+))?(?:\/([smhdwy]))?$/.exec(t);
  if (m) {
    let v = now;
    if (m[1]) {
      const d = parseDuration(m[2]);
      if (isNaN(d)) return NaN;
      v += m[1] === "-" ? -d : d;
    }
    if (m[3]) {
      const unit = UNIT_S[m[3]];
      if (m[3] === "d" || m[3] === "w" || m[3] === "y") {
        const date = new Date(v * 1000);
        date.setHours(0, 0, 0, 0);
        if (m[3] === "w") date.setDate(date.getDate() - date.getDay());
        if (m[3] === "y") date.setMonth(0, 1);
        v = date.getTime() / 1000;
      } else v = Math.floor(v / unit) * unit;
    }
    return v;
  }
  const d = Date.parse(t);
  return isNaN(d) ? NaN : d / 1000;
}

export const QUICK_RANGES: [string, string][] = [
  ["now-5m", "Last 5 minutes"], ["now-15m", "Last 15 minutes"], ["now-1h", "Last 1 hour"],
  ["now-3h", "Last 3 hours"], ["now-6h", "Last 6 hours"], ["now-12h", "Last 12 hours"],
  ["now-24h", "Last 24 hours"], ["now-2d", "Last 2 days"], ["now-7d", "Last 7 days"], ["now-30d", "Last 30 days"],
];

export const REFRESH_OPTIONS = ["", "5s", "10s", "30s", "1m", "5m", "15m", "1h"];
