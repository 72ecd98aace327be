// Number formatting for axes, legends and tables: SI-prefixed short numbers, bytes, durations,
// percentages. Units follow Grafana's names so dashboards imported from Grafana read the same.

const SI = ["", "k", "M", "G", "T", "P", "E"];
const SI_SMALL = ["", "m", "µ", "n", "p"];

function trim(s: string): string {
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

/** Fixed decimals, or up to 3 significant decimals when `decimals` is undefined. */
function fixed(v: number, decimals?: number): string {
  if (decimals !== undefined) return v.toFixed(decimals);
  const a = Math.abs(v);
  const d = a >= 100 ? 1 : a >= 10 ? 2 : 3;
  return trim(v.toFixed(d));
}

/** 1234567 → "1.23M", 0.0042 → "4.2m". */
export function formatShort(v: number, decimals?: number): string {
  if (!isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000) {
    let i = 0;
    let x = v;
    while (Math.abs(x) >= 1000 && i < SI.length - 1) {
      x /= 1000;
      i++;
    }
    return fixed(x, decimals) + SI[i];
  }
  if (a < 0.01) {
    let i = 0;
    let x = v;
    while (Math.abs(x) < 1 && i < SI_SMALL.length - 1) {
      x *= 1000;
      i++;
    }
    return fixed(x, decimals) + SI_SMALL[i];
  }
  return fixed(v, decimals);
}

function scaled(v: number, base: number, units: string[], decimals?: number, sep = " "): string {
  if (!isFinite(v)) return String(v);
  let i = 0;
  let x = v;
  while (Math.abs(x) >= base && i < units.length - 1) {
    x /= base;
    i++;
  }
  return fixed(x, decimals) + sep + units[i];
}

/** Seconds as "350 ms", "2.5 s", "3.2 min", "1.5 hour", "2 day". */
export function formatSeconds(v: number, decimals?: number): string {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return "0 s";
  if (a < 1e-6) return fixed(v * 1e9, decimals) + " ns";
  if (a < 1e-3) return fixed(v * 1e6, decimals) + " µs";
  if (a < 1) return fixed(v * 1e3, decimals) + " ms";
  if (a < 60) return fixed(v, decimals) + " s";
  if (a < 3600) return fixed(v / 60, decimals) + " min";
  if (a < 86400) return fixed(v / 3600, decimals) + " hour";
  if (a < 604800) return fixed(v / 86400, decimals) + " day";
  return fixed(v / 604800, decimals) + " week";
}

/** Formats a value in a Grafana unit; unknown units fall back to short numbers with the unit as suffix. */
export function formatUnit(v: number | null | undefined, unit = "short", decimals?: number): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  switch (unit) {
    case "":
    case "short":
      return formatShort(v, decimals);
    case "none":
      return decimals === undefined ? String(v) : v.toFixed(decimals);
    case "bytes":
      return scaled(v, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], decimals);
    case "decbytes":
      return scaled(v, 1000, ["B", "kB", "MB", "GB", "TB", "PB"], decimals);
    case "bits":
      return scaled(v, 1024, ["b", "Kib", "Mib", "Gib", "Tib"], decimals);
    case "bps":
      return scaled(v, 1000, ["bps", "kbps", "Mbps", "Gbps", "Tbps"], decimals);
    case "Bps":
    case "binBps":
      return scaled(v, 1024, ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"], decimals);
    case "s":
      return formatSeconds(v, decimals);
    case "ms":
      return formatSeconds(v / 1000, decimals);
    case "µs":
    case "us":
      return formatSeconds(v / 1e6, decimals);
    case "ns":
      return formatSeconds(v / 1e9, decimals);
    case "percent":
      return fixed(v, decimals ?? 1) + "%";
    case "percentunit":
      return fixed(v * 100, decimals ?? 1) + "%";
    case "currencyUSD":
      return "$" + formatShort(v, decimals ?? 2);
    case "currencyEUR":
      return "€" + formatShort(v, decimals ?? 2);
    case "tokens":
      return formatShort(v, decimals) + " tokens";
    case "reqps":
      return formatShort(v, decimals) + " req/s";
    case "ops":
      return formatShort(v, decimals) + " ops/s";
    default:
      return formatShort(v, decimals) + " " + unit;
  }
}

/** "name{a="1", b="2"}" like Prometheus' UI. */
export function seriesName(metric: Record<string, string>): string {
  const name = metric.__name__ ?? "";
  const rest = Object.keys(metric)
    .filter((k) => k !== "__name__")
    .sort()
    .map((k) => `${k}="${metric[k]}"`);
  return rest.length ? `${name}{${rest.join(", ")}}` : name || "{}";
}

/** Grafana legend templates: "{{instance}} {{job}}". */
export function legendFormat(tmpl: string | undefined, metric: Record<string, string>): string {
  if (!tmpl) return seriesName(metric);
  return tmpl.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, k) => metric[k] ?? "");
}

/** "3m ago" / "in 2h" for a unix-seconds time relative to now. */
export function formatAgo(sec: number, now = Date.now() / 1000): string {
  const d = now - sec;
  const a = Math.abs(d);
  const txt = a < 1 ? "just now" : a < 60 ? `${Math.round(a)}s` : a < 3600 ? `${Math.round(a / 60)}m` : a < 86400 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  if (txt === "just now") return txt;
  return d >= 0 ? `${txt} ago` : `in ${txt}`;
}
