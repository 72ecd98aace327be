// Fetching for dashboards: a priority limiter so at most a few panel queries run at once (panels in
// view first), variable resolution in declaration order (later variables may use earlier ones),
// panel queries with step = range / panel width, and alert annotations from the ALERTS series.
import { get, queryInstant, queryRange, type QueryData } from "../api";
import type { Panel, Variable } from "./model";
import type { Annotation, PanelData, TargetData } from "../panels/types";
import { toSeries } from "./transform";
import { applyRegex, computeStep, interpolate, parseVarQuery, pickCurrent, queryResultLine, staticOptions, type VarState } from "./vars";

/** Runs async jobs with bounded concurrency; lower priority numbers start first. */
export class Limiter {
  private running = 0;
  private queue: { prio: number; seq: number; start: () => void }[] = [];
  private seq = 0;
  constructor(private readonly max: number) {}

  run<T>(prio: number, job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.running++;
        job().then(resolve, reject).finally(() => {
          this.running--;
          this.next();
        });
      };
      this.queue.push({ prio, seq: this.seq++, start });
      this.next();
    });
  }

  private next() {
    while (this.running < this.max && this.queue.length) {
      let best = 0;
      for (let i = 1; i < this.queue.length; i++) {
        const q = this.queue[i], b = this.queue[best];
        if (q.prio < b.prio || (q.prio === b.prio && q.seq < b.seq)) best = i;
      }
      this.queue.splice(best, 1)[0].start();
    }
  }
}

/** Options of one variable from the server or its definition (before the regex). */
async function variableOptions(v: Variable, vars: Map<string, VarState>, start: number, end: number): Promise<string[]> {
  if (v.type && v.type !== "query") return staticOptions(v);
  const q = parseVarQuery(interpolate(v.query ?? "", vars, { intervalSec: 60, rangeSec: end - start }));
  switch (q.kind) {
    case "label_values": {
      const params: Record<string, string> = { start: String(Math.floor(start)), end: String(Math.ceil(end)) };
      if (q.match) params["match[]"] = q.match;
      return get<string[]>(`/api/v1/label/${encodeURIComponent(q.label)}/values`, params);
    }
    case "metrics": {
      const names = await get<string[]>("/api/v1/label/__name__/values");
      return applyRegex(names, q.regex.startsWith("/") ? q.regex : `/${q.regex}/`);
    }
    case "query_result": {
      const r = (await queryInstant(q.expr, end)).data;
      if (r.resultType === "vector") return r.result.map((s) => queryResultLine(s.metric, s.value?.[1] ?? "", s.value?.[0] ?? end));
      if (r.resultType === "scalar" || r.resultType === "string") return [`${r.result[1]}`];
      return [];
    }
    case "invalid":
      throw new Error(q.error);
  }
}

/**
 * Resolves all variables in order. `wanted` holds selections from the URL (var-x) or the user;
 * errors are reported per variable and leave that variable with no options.
 */
export async function resolveVariables(
  defs: Variable[],
  wanted: Map<string, string[]>,
  start: number,
  end: number,
): Promise<{ vars: Map<string, VarState>; errors: Map<string, string> }> {
  const vars = new Map<string, VarState>();
  const errors = new Map<string, string>();
  for (const def of defs) {
    let options: string[] = [];
    try {
      const raw = await variableOptions(def, vars, start, end);
      options = def.type === "custom" || def.type === "interval" || def.type === "constant" ? raw : applyRegex(raw, def.regex);
    } catch (e) {
      errors.set(def.name, e instanceof Error ? e.message : String(e));
    }
    vars.set(def.name, { def, options, current: pickCurrent(def, options, wanted.get(def.name)) });
  }
  return { vars, errors };
}

/** Queries all targets of a panel; throws the first query error (with the target's ref). */
export async function fetchPanelData(panel: Panel, vars: Map<string, VarState>, start: number, end: number, widthPx: number): Promise<PanelData> {
  const range = Math.max(1, end - start);
  const targets = (panel.targets ?? []).filter((t) => t.expr && t.expr.trim() !== "");
  const results = await Promise.all(
    targets.map(async (t, i): Promise<TargetData> => {
      const ref = t.ref || String.fromCharCode(65 + i);
      const step = computeStep(range, widthPx, t.interval ?? "");
      const expr = interpolate(t.expr, vars, { intervalSec: step, rangeSec: range });
      let data: QueryData;
      try {
        const instant = !!t.instant;
        if (instant) data = (await queryInstant(expr, end)).data;
        else {
          const s = Math.floor(start / step) * step;
          const e = Math.ceil(end / step) * step;
          data = (await queryRange(expr, s, e, step)).data;
        }
      } catch (err) {
        throw new Error(`${ref}: ${err instanceof Error ? err.message : String(err)}`);
      }
      return { ref, data, series: toSeries(data, t.legend ?? "", ref) };
    }),
  );
  return { targets: results, series: results.flatMap((r) => r.series), start, end };
}

/**
 * Alert state changes over the range from the ALERTS series: a firing series that appears is a
 * start marker, one that disappears before the end of the range is an end marker.
 */
export async function fetchAlertAnnotations(start: number, end: number, widthPx: number): Promise<Annotation[]> {
  const step = computeStep(end - start, widthPx);
  const r = (await queryRange('ALERTS{alertstate="firing"}', start, end, step)).data;
  if (r.resultType !== "matrix") return [];
  return alertTransitions(r.result.map((s) => ({ labels: s.metric, times: (s.values ?? []).map((v) => v[0]) })), step, end);
}

/** Start/end markers from the sample times of ALERTS series (gaps over 1.5 steps split episodes). */
export function alertTransitions(series: { labels: Record<string, string>; times: number[] }[], step: number, end: number): Annotation[] {
  const out: Annotation[] = [];
  for (const s of series) {
    const name = s.labels.alertname ?? "alert";
    const extra = Object.entries(s.labels)
      .filter(([k]) => k !== "__name__" && k !== "alertname" && k !== "alertstate")
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
    const text = extra ? `${name} {${extra}}` : name;
    s.times.forEach((t, i) => {
      const prev = i > 0 ? s.times[i - 1] : undefined;
      const next = i + 1 < s.times.length ? s.times[i + 1] : undefined;
      if (prev === undefined || t - prev > step * 1.5) out.push({ time: t, kind: "start", text });
      if ((next === undefined && end - t > step * 1.5) || (next !== undefined && next - t > step * 1.5)) out.push({ time: t, kind: "end", text });
    });
  }
  return out.sort((a, b) => a.time - b.time);
}
