// Value formatting for panels: Grafana's unit ids (bytes, decbytes, bits, s, ms, µs, ns, percent,
// percentunit, short, none, currencyUSD/EUR, tokens, reqps, ops, …), decimals, threshold colours
// and per-series overrides by name or /regex/.
import type { Override, Threshold } from "./model";

/** Decimals picked automatically from the magnitude of an already-scaled value. */
function autoDecimals(v: number): number {
  const a = Math.abs(v);
  if (a === 0 || a >= 100) return 0;
  if (a >= 10) return 1;
  if (a >= 1) return 2;
  return Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(a)) + 1));
}

/** Fixed decimals, or automatic ones with trailing zeros trimmed. */
export function toFixed(v: number, decimals?: number): string {
  if (!isFinite(v)) return isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
  if (decimals !== undefined && decimals !== null && decimals >= 0) return v.toFixed(Math.min(20, decimals));
  const s = v.toFixed(autoDecimals(v));
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

/** Scales by `base` through `suffixes` (first suffix is the unscaled one). */
function scaled(v: number, base: number, suffixes: string[], decimals?: number, sep = " "): string {
  let i = 0;
  let x = v;
  while (Math.abs(x) >= base && i < suffixes.length - 1) {
    x /= base;
    i++;
  }
  const sfx = suffixes[i];
  return toFixed(x, decimals) + (sfx ? sep + sfx : "");
}

const SHORT = ["", "K", "M", "B", "T", "Q"];
const IEC_BYTES = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
const SI_BYTES = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
const IEC_BITS = ["b", "Kib", "Mib", "Gib", "Tib", "Pib"];
const SI_BITS = ["b", "kb", "Mb", "Gb", "Tb", "Pb"];

function short(v: number, decimals?: number): string {
  return scaled(v, 1000, SHORT, decimals, "");
}

/** Seconds as the largest fitting unit: ns, µs, ms, s, min, hour, day, week, year. */
function duration(sec: number, decimals?: number): string {
  const a = Math.abs(sec);
  if (a === 0) return `${toFixed(0, decimals)} s`;
  if (a < 1e-6) return `${toFixed(sec * 1e9, decimals)} ns`;
  if (a < 1e-3) return `${toFixed(sec * 1e6, decimals)} µs`;
  if (a < 1) return `${toFixed(sec * 1e3, decimals)} ms`;
  if (a < 60) return `${toFixed(sec, decimals)} s`;
  if (a < 3600) return `${toFixed(sec / 60, decimals)} min`;
  if (a < 86400) return `${toFixed(sec / 3600, decimals)} hour`;
  if (a < 604800) return `${toFixed(sec / 86400, decimals)} day`;
  if (a < 31536000) return `${toFixed(sec / 604800, decimals)} week`;
  return `${toFixed(sec / 31536000, decimals)} year`;
}

/** Formats a value in a Grafana unit. Unknown units are appended as a suffix. */
export function formatValue(v: number | null | undefined, unit = "none", decimals?: number): string {
  if (v === null || v === undefined) return "-";
  if (!isFinite(v)) return toFixed(v);
  switch (unit) {
    case "":
    case "none": return toFixed(v, decimals);
    case "short": return short(v, decimals);
    case "bytes": return scaled(v, 1024, IEC_BYTES, decimals);
    case "decbytes": return scaled(v, 1000, SI_BYTES, decimals);
    case "bits": return scaled(v, 1024, IEC_BITS, decimals);
    case "decbits": return scaled(v, 1000, SI_BITS, decimals);
    case "Bps": case "binBps": return scaled(v, 1024, IEC_BYTES, decimals) + "/s";
    case "decBps": return scaled(v, 1000, SI_BYTES, decimals) + "/s";
    case "bps": case "binbps": return scaled(v, 1024, IEC_BITS, decimals) + "/s";
    case "s": case "dtdurations": return duration(v, decimals);
    case "ms": return duration(v / 1e3, decimals);
    case "µs": case "us": return duration(v / 1e6, decimals);
    case "ns": return duration(v / 1e9, decimals);
    case "m": return duration(v * 60, decimals);
    case "h": return duration(v * 3600, decimals);
    case "d": return duration(v * 86400, decimals);
    case "percent": return `${toFixed(v, decimals)}%`;
    case "percentunit": return `${toFixed(v * 100, decimals)}%`;
    case "currencyUSD": return (v < 0 ? "-$" : "$") + short(Math.abs(v), decimals);
    case "currencyEUR": return (v < 0 ? "-€" : "€") + short(Math.abs(v), decimals);
    case "currencyGBP": return (v < 0 ? "-£" : "£") + short(Math.abs(v), decimals);
    case "tokens": return `${short(v, decimals)} tokens`;
    case "reqps": return `${short(v, decimals)} req/s`;
    case "rps": return `${short(v, decimals)} rd/s`;
    case "wps": return `${short(v, decimals)} wr/s`;
    case "ops": return `${short(v, decimals)} ops/s`;
    case "iops": return `${short(v, decimals)} io/s`;
    case "cps": return `${short(v, decimals)} c/s`;
    case "hertz": return scaled(v, 1000, ["Hz", "kHz", "MHz", "GHz"], decimals);
    case "celsius": return `${toFixed(v, decimals)}°C`;
    case "bool": return v !== 0 ? "true" : "false";
  }
  if (unit.startsWith("suffix:")) return `${toFixed(v, decimals)}${unit.slice(7)}`;
  if (unit.startsWith("prefix:")) return `${unit.slice(7)}${toFixed(v, decimals)}`;
  return `${toFixed(v, decimals)} ${unit}`;
}

/** Grafana's named colours → hex; other strings (hex, rgb()) pass through. */
const NAMED: Record<string, string> = {
  green: "#73bf69", "semi-dark-green": "#56a64b", "dark-green": "#37872d", "light-green": "#96d98d",
  red: "#f2495c", "semi-dark-red": "#e02f44", "dark-red": "#c4162a", "light-red": "#ff7383",
  yellow: "#fade2a", "semi-dark-yellow": "#f2cc0c", "dark-yellow": "#e0b400", "light-yellow": "#ffee52",
  orange: "#ff9830", "semi-dark-orange": "#ff780a", "dark-orange": "#fa6400", "light-orange": "#ffb357",
  blue: "#5794f2", "semi-dark-blue": "#3274d9", "dark-blue": "#1f60c4", "light-blue": "#8ab8ff",
  purple: "#b877d9", "semi-dark-purple": "#a352cc", "dark-purple": "#8f3bb8", "light-purple": "#ca95e5",
  text: "#d8d9da", transparent: "transparent",
};

export function resolveColor(c: string): string {
  return NAMED[c] ?? c;
}

/** The colour of the last threshold step whose value is ≤ v (the first step's null is −∞). */
export function thresholdColor(v: number | null | undefined, steps: Threshold[] | undefined, fallback = "#73bf69"): string {
  if (!steps || steps.length === 0) return fallback;
  let color = steps[0].color;
  if (v === null || v === undefined || isNaN(v)) return resolveColor(color);
  for (const s of steps) {
    if (s.value === null || s.value === undefined || v >= s.value) color = s.color;
  }
  return resolveColor(color);
}

/** Does an override's name matcher ("exact" or "/regex/flags") match this series name? */
export function overrideMatches(matcher: string, name: string): boolean {
  const m = /^\/(.*)\/([imsu]*)$/s.exec(matcher);
  if (m) {
    try {
      return new RegExp(m[1], m[2]).test(name);
    } catch {
      return false;
    }
  }
  return matcher === name;
}

export interface SeriesProps { unit?: string; color?: string; display_name?: string; hide?: boolean }

/** Merges the properties of all overrides that match a series name (later ones win). */
export function overridesFor(name: string, overrides: Override[] | undefined): SeriesProps {
  const out: SeriesProps = {};
  for (const o of overrides ?? []) {
    if (!o.match || !overrideMatches(o.match.name, name)) continue;
    if (o.unit !== undefined) out.unit = o.unit;
    if (o.color !== undefined) out.color = resolveColor(o.color);
    if (o.display_name !== undefined) out.display_name = o.display_name;
    if (o.hide !== undefined) out.hide = o.hide;
  }
  return out;
}

/** Classic palette for series colours. */
export const PALETTE = [
  "#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0",
  "#37872d", "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477",
];

export const UNITS = [
  "none", "short", "percent", "percentunit", "bytes", "decbytes", "bits", "decbits", "Bps", "bps",
  "s", "ms", "µs", "ns", "reqps", "ops", "iops", "tokens", "currencyUSD", "currencyEUR", "hertz", "celsius", "bool",
];
