import { describe, expect, test } from "vitest";
import { ALL, applyRegex, computeStep, interpolate, parseVarQuery, pickCurrent, queryResultLine, rateInterval, type VarState } from "./vars";
import { formatValue, overridesFor, thresholdColor } from "./units";
import { layout, movePanel, layoutHeight } from "./layout";
import { escapeHtml, renderMarkdown } from "./markdown";
import { align, classicHeatmap, nativeHeatmap, reduce, seriesName, seriesToTable, stack, toSeries, type Series } from "./transform";
import { formatDuration, parseDuration, parseTime } from "./timerange";
import type { Panel } from "./model";

const vs = (name: string, options: string[], current: string[], extra: Partial<VarState["def"]> = {}): [string, VarState] => [
  name,
  { def: { name, type: "query", ...extra }, options, current },
];

describe("interpolation", () => {
  const vars = new Map([
    vs("instance", ["a:9100", "b:9100"], ["a:9100"]),
    vs("job", ["node", "api.x"], [ALL], { multi: true, include_all: true }),
    vs("env", ["prod", "dev"], ["prod", "dev"], { multi: true }),
    vs("allc", ["x", "y"], [ALL], { include_all: true, all_value: ".*" }),
  ]);
  test("single value in all three syntaxes", () => {
    expect(interpolate('up{instance="$instance"}', vars)).toBe('up{instance="a:9100"}');
    expect(interpolate('up{instance="${instance}"}', vars)).toBe('up{instance="a:9100"}');
    expect(interpolate('up{instance="[[instance]]"}', vars)).toBe('up{instance="a:9100"}');
  });
  test("All without all_value is a regex alternation of every option, escaped", () => {
    expect(interpolate('up{job=~"$job"}', vars)).toBe('up{job=~"(node|api\\\\.x)"}');
  });
  test("multi selection becomes (a|b)", () => {
    expect(interpolate('up{env=~"$env"}', vars)).toBe('up{env=~"(prod|dev)"}');
  });
  test("custom all value is used verbatim", () => {
    expect(interpolate('up{c=~"$allc"}', vars)).toBe('up{c=~".*"}');
  });
  test("unknown variables stay as written; longest name wins", () => {
    expect(interpolate("$instancex $nope", vars)).toBe("$instancex $nope");
  });
  test("built-ins", () => {
    const b = { intervalSec: 30, rangeSec: 21600 };
    expect(interpolate("rate(x[$__rate_interval]) $__interval $__range $__range_s", vars, b)).toBe(
      "rate(x[1m]) 30s 21600s 21600",
    );
    expect(interpolate("[$__rate_interval]", vars, { intervalSec: 120, rangeSec: 1 })).toBe("[135s]");
  });
  test("rate interval is max(interval + scrape, 4 × scrape)", () => {
    expect(rateInterval(15)).toBe(60);
    expect(rateInterval(60)).toBe(75);
    expect(rateInterval(10, 30)).toBe(120);
  });
  test("step from range and width with a min interval", () => {
    expect(computeStep(86400, 1200)).toBe(72);
    expect(computeStep(3600, 1200)).toBe(3);
    expect(computeStep(3600, 1200, "30s")).toBe(30);
  });
});

describe("variable queries", () => {
  test("label_values with a selector containing commas", () => {
    expect(parseVarQuery('label_values(up{job="a",env="b"}, instance)')).toEqual({
      kind: "label_values", label: "instance", match: 'up{job="a",env="b"}',
    });
    expect(parseVarQuery("label_values(job)")).toEqual({ kind: "label_values", label: "job" });
    expect(parseVarQuery("query_result(topk(3, up))")).toEqual({ kind: "query_result", expr: "topk(3, up)" });
    expect(parseVarQuery("nonsense").kind).toBe("invalid");
  });
  test("regex filters and captures; duplicates removed", () => {
    const lines = [
      queryResultLine({ __name__: "up", instance: "a:1" }, "1", 1700000000),
      queryResultLine({ __name__: "up", instance: "b:1" }, "1", 1700000000),
      queryResultLine({ __name__: "up", instance: "a:1", x: "y" }, "0", 1700000000),
    ];
    expect(lines[0]).toBe('up{instance="a:1"} 1 1700000000000');
    expect(applyRegex(lines, '/instance="([^"]+)"/')).toEqual(["a:1", "b:1"]);
    expect(applyRegex(["node1", "db1", "node2"], "/^node/")).toEqual(["node1", "node2"]);
  });
  test("current selection falls back to first option or All", () => {
    expect(pickCurrent({ name: "x" }, ["a", "b"], ["b"])).toEqual(["b"]);
    expect(pickCurrent({ name: "x" }, ["a", "b"], ["zz"])).toEqual(["a"]);
    expect(pickCurrent({ name: "x", include_all: true, multi: true }, ["a", "b"], undefined)).toEqual([ALL]);
    expect(pickCurrent({ name: "x", multi: true }, ["a", "b"], ["a", "b", "c"])).toEqual(["a", "b"]);
  });
});

describe("units", () => {
  test("bytes are IEC, decbytes SI", () => {
    expect(formatValue(1536, "bytes")).toBe("1.5 KiB");
    expect(formatValue(1073741824, "bytes")).toBe("1 GiB");
    expect(formatValue(1500000, "decbytes")).toBe("1.5 MB");
    expect(formatValue(512, "bytes")).toBe("512 B");
    expect(formatValue(2048, "bits")).toBe("2 Kib");
  });
  test("durations", () => {
    expect(formatValue(0.25, "s")).toBe("250 ms");
    expect(formatValue(90, "s")).toBe("1.5 min");
    expect(formatValue(1500, "ms")).toBe("1.5 s");
    expect(formatValue(0.5, "ms")).toBe("500 µs");
    expect(formatValue(250, "ns")).toBe("250 ns");
    expect(formatValue(7200, "s")).toBe("2 hour");
  });
  test("percent, short, currency, rates, decimals", () => {
    expect(formatValue(0.1234, "percentunit", 1)).toBe("12.3%");
    expect(formatValue(55, "percent")).toBe("55%");
    expect(formatValue(1234567, "short")).toBe("1.23M");
    expect(formatValue(2.5e9, "short")).toBe("2.5B");
    expect(formatValue(1234.5, "currencyUSD", 2)).toBe("$1.23K");
    expect(formatValue(3.5, "currencyEUR", 2)).toBe("€3.50");
    expect(formatValue(12000, "tokens")).toBe("12K tokens");
    expect(formatValue(3, "reqps")).toBe("3 req/s");
    expect(formatValue(1.23456, "none", 2)).toBe("1.23");
    expect(formatValue(null, "bytes")).toBe("-");
  });
  test("threshold colours: last step ≤ value, first step is the base", () => {
    const t = [{ value: null, color: "green" }, { value: 80, color: "#ff0000" }, { value: 90, color: "red" }];
    expect(thresholdColor(10, t)).toBe("#73bf69");
    expect(thresholdColor(80, t)).toBe("#ff0000");
    expect(thresholdColor(95, t)).toBe("#f2495c");
    expect(thresholdColor(null, t)).toBe("#73bf69");
  });
  test("overrides by exact name and /regex/", () => {
    const o = [{ match: { name: "/^cpu/" }, unit: "percent" }, { match: { name: "cpu0" }, color: "red", display_name: "First" }];
    expect(overridesFor("cpu0", o)).toEqual({ unit: "percent", color: "#f2495c", display_name: "First" });
    expect(overridesFor("cpu1", o)).toEqual({ unit: "percent" });
    expect(overridesFor("mem", o)).toEqual({});
  });
});

describe("grid layout", () => {
  const p = (type: Panel["type"], grid?: Panel["grid"], collapsed = false): Panel => ({ type, title: type, grid, collapsed });
  test("panels float up and never overlap", () => {
    const cells = layout([p("stat", { x: 0, y: 5, w: 12, h: 4 }), p("stat", { x: 6, y: 5, w: 12, h: 4 })]);
    expect(cells.map((c) => [c.x, c.y, c.w, c.h])).toEqual([[0, 0, 12, 4], [6, 4, 12, 4]]);
  });
  test("rows: header h=1 and collapsed rows hide their panels", () => {
    const panels = [
      p("row", { x: 0, y: 0, w: 24, h: 1 }),
      p("timeseries", { x: 0, y: 1, w: 24, h: 8 }),
      p("row", { x: 0, y: 9, w: 24, h: 1 }, true),
      p("stat", { x: 0, y: 10, w: 6, h: 4 }),
      p("row", { x: 0, y: 14, w: 24, h: 1 }),
      p("gauge", { x: 0, y: 15, w: 6, h: 4 }),
    ];
    const cells = layout(panels);
    expect(cells.map((c) => [c.index, c.y, c.hidden])).toEqual([
      [0, 0, false], [1, 1, false], [2, 9, false], [3, 10, true], [4, 10, false], [5, 11, false],
    ]);
    expect(layoutHeight(cells)).toBe(15);
  });
  test("panels without grid are placed two per line", () => {
    const cells = layout([p("stat"), p("stat"), p("stat")]);
    expect(cells.map((c) => [c.x, c.y])).toEqual([[0, 0], [12, 0], [0, 8]]);
  });
  test("moving a panel onto another pushes the other down", () => {
    const panels = [p("stat", { x: 0, y: 0, w: 12, h: 4 }), p("gauge", { x: 12, y: 0, w: 12, h: 4 })];
    const moved = movePanel(panels, 1, { x: 0, y: 0, w: 12, h: 4 });
    expect(moved[1].grid).toEqual({ x: 0, y: 0, w: 12, h: 4 });
    expect(moved[0].grid).toEqual({ x: 0, y: 4, w: 12, h: 4 });
  });
});

describe("markdown", () => {
  test("escapes HTML everywhere", () => {
    const html = renderMarkdown("# <b>t</b>\n<script>alert(1)</script> and `<i>`\n\n- <img src=x onerror=y>");
    expect(html).not.toMatch(/<script|<b>|<img|<i>/);
    expect(html).toContain("&lt;script&gt;");
    expect(html).toContain("<code>&lt;i&gt;</code>");
    expect(escapeHtml(`"'&`)).toBe("&quot;&#39;&amp;");
  });
  test("headings, lists, links, emphasis, code blocks", () => {
    expect(renderMarkdown("## Title")).toBe("<h2>Title</h2>");
    expect(renderMarkdown("- a\n- **b**\n\n1. x\n2. *y*")).toBe("<ul><li>a</li><li><strong>b</strong></li></ul>\n<ol><li>x</li><li><em>y</em></li></ol>");
    expect(renderMarkdown("see [docs](https://x.io/a?b=1&c=2)")).toBe(
      '<p>see <a href="https://x.io/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">docs</a></p>',
    );
    expect(renderMarkdown("[bad](javascript:alert(1))")).not.toContain("href");
    expect(renderMarkdown("```\n<a> **x**\n```")).toBe("<pre><code>&lt;a&gt; **x**</code></pre>");
  });
});

describe("series and tables", () => {
  test("legend templates and default names", () => {
    expect(seriesName({ __name__: "up", job: "a", instance: "i" })).toBe('up{instance="i", job="a"}');
    expect(seriesName({ job: "a", instance: "i" }, "{{instance}} / {{ job }}")).toBe("i / a");
    expect(seriesName({ __name__: "up" })).toBe("up");
  });
  test("reduce", () => {
    expect(reduce([1, null, 3, 2], "mean")).toBe(2);
    expect(reduce([1, 5, 2], "max")).toBe(5);
    expect(reduce([1, 5, 2], "last")).toBe(2);
    expect(reduce([1, 5, 2], "first")).toBe(1);
    expect(reduce([null], "last")).toBe(null);
    expect(reduce([1, 5, 2], "count")).toBe(3);
  });
  test("align and stack", () => {
    const a: Series = { name: "a", labels: {}, ref: "A", times: [1, 2], values: [1, 2] };
    const b: Series = { name: "b", labels: {}, ref: "A", times: [2, 3], values: [10, 20] };
    const [t, ca, cb] = align([a, b]);
    expect(t).toEqual([1, 2, 3]);
    expect(ca).toEqual([1, 2, null]);
    expect(cb).toEqual([null, 10, 20]);
    expect(stack([ca, cb])).toEqual([[1, 2, null], [null, 12, 20]]);
  });
  test("instant results from two targets join by labels", () => {
    const A = toSeries({ resultType: "vector", result: [{ metric: { job: "x" }, value: [10, "1"] }, { metric: { job: "y" }, value: [10, "2"] }] }, "", "A");
    const B = toSeries({ resultType: "vector", result: [{ metric: { job: "x" }, value: [10, "5"] }] }, "", "B");
    expect(seriesToTable([{ ref: "A", series: A }, { ref: "B", series: B }])).toEqual({
      columns: ["Time", "job", "Value #A", "Value #B"],
      rows: [[10, "x", 1, 5], [10, "y", 2, null]],
    });
  });
  test("range results give a row per sample", () => {
    const A = toSeries({ resultType: "matrix", result: [{ metric: { __name__: "m", i: "1" }, values: [[1, "1"], [2, "2"]] }] }, "", "A");
    expect(seriesToTable([{ ref: "A", series: A }], false)).toEqual({
      columns: ["Time", "__name__", "i", "Value"],
      rows: [[1, "m", "1", 1], [2, "m", "1", 2]],
    });
  });
});

describe("heatmaps", () => {
  test("classic le buckets are de-cumulated and sorted", () => {
    const s = (le: string, vals: number[]): Series => ({ name: le, labels: { le }, ref: "A", times: [1, 2], values: vals });
    const h = classicHeatmap([s("+Inf", [10, 20]), s("0.1", [2, 5]), s("1", [7, 5])]);
    expect(h.buckets).toEqual([{ lower: 0, upper: 0.1 }, { lower: 0.1, upper: 1 }, { lower: 1, upper: Infinity }]);
    expect(h.counts).toEqual([[2, 5], [5, 0], [3, 15]]);
    expect(h.times).toEqual([1, 2]);
  });
  test("native histogram buckets are summed per time", () => {
    const h = nativeHeatmap([
      { metric: {}, histograms: [[1, { count: "3", sum: "1", buckets: [[0, "0.5", "1", "1"], [0, "1", "2", "2"]] }], [2, { count: "1", sum: "1", buckets: [[0, "1", "2", "1"]] }]] },
      { metric: { a: "b" }, histograms: [[2, { count: "4", sum: "1", buckets: [[0, "0.5", "1", "4"]] }]] },
    ]);
    expect(h.times).toEqual([1, 2]);
    expect(h.buckets).toEqual([{ lower: 0.5, upper: 1 }, { lower: 1, upper: 2 }]);
    expect(h.counts).toEqual([[1, 4], [2, 1]]);
  });
});

describe("time", () => {
  test("durations and relative times", () => {
    expect(parseDuration("1h30m")).toBe(5400);
    expect(parseDuration("500ms")).toBe(0.5);
    expect(parseDuration("x")).toBeNaN();
    expect(formatDuration(60)).toBe("1m");
    expect(formatDuration(90)).toBe("90s");
    expect(formatDuration(0.5)).toBe("500ms");
    expect(parseTime("now-6h", 100000)).toBe(100000 - 21600);
    expect(parseTime("now", 5)).toBe(5);
    expect(parseTime("1700000000000")).toBe(1700000000);
    expect(parseTime("now-5m/m", 1000)).toBe(660);
  });
});

import { alertTransitions, Limiter } from "./loader";
describe("loader", () => {
  test("alert transitions split episodes on gaps", () => {
    const a = alertTransitions([{ labels: { alertname: "Down", instance: "x" }, times: [100, 110, 120, 200, 210] }], 10, 300);
    expect(a.map((x) => [x.time, x.kind])).toEqual([[100, "start"], [120, "end"], [200, "start"], [210, "end"]]);
    expect(a[0].text).toBe("Down {instance=x}");
    const still = alertTransitions([{ labels: { alertname: "A" }, times: [280, 290, 300] }], 10, 300);
    expect(still.map((x) => x.kind)).toEqual(["start"]);
  });
  test("limiter bounds concurrency and runs lower priority numbers first", async () => {
    const lim = new Limiter(2);
    let running = 0, peak = 0;
    const order: number[] = [];
    const job = (id: number) => async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      order.push(id);
      running--;
    };
    await Promise.all([lim.run(5, job(1)), lim.run(5, job(2)), lim.run(9, job(3)), lim.run(0, job(4))]);
    expect(peak).toBe(2);
    expect(order.indexOf(4)).toBeLessThan(order.indexOf(3));
  });
});

describe("tables from several queries", () => {
  test("metric names do not split rows of different queries", () => {
    const A = toSeries({ resultType: "vector", result: [{ metric: { __name__: "up", job: "x" }, value: [10, "1"] }] }, "", "A");
    const B = toSeries({ resultType: "vector", result: [{ metric: { __name__: "scrape_duration_seconds", job: "x" }, value: [10, "0.5"] }] }, "", "B");
    expect(seriesToTable([{ ref: "A", series: A }, { ref: "B", series: B }])).toEqual({
      columns: ["Time", "job", "Value #A", "Value #B"],
      rows: [[10, "x", 1, 0.5]],
    });
  });
});

import hostFixture from "./fixtures/host.json";
import { PANEL_TYPES, type Dashboard } from "./model";
import { parseVarQuery as pvq } from "./vars";
describe("fixture dashboard", () => {
  const d = hostFixture as unknown as Dashboard;
  test("uses every panel type, valid grids and parseable variable queries", () => {
    for (const t of PANEL_TYPES) expect(d.panels.some((p) => p.type === t)).toBe(true);
    for (const p of d.panels) {
      expect(p.grid!.x + p.grid!.w).toBeLessThanOrEqual(24);
    }
    for (const v of d.variables ?? []) if (v.type === "query") expect(pvq(v.query!).kind).toBe("label_values");
    const cells = layout(d.panels);
    expect(cells.filter((c) => c.hidden).map((c) => d.panels[c.index].title)).toEqual(["Hidden until expanded"]);
  });
});

describe("moving panels between rows", () => {
  const p = (type: Panel["type"], title: string, grid: Panel["grid"]): Panel => ({ type, title, grid });
  test("dropping below another row's header moves the panel into that row", () => {
    const panels = [
      p("row", "r1", { x: 0, y: 0, w: 24, h: 1 }),
      p("stat", "a", { x: 0, y: 1, w: 12, h: 4 }),
      p("stat", "b", { x: 12, y: 1, w: 12, h: 4 }),
      p("row", "r2", { x: 0, y: 5, w: 24, h: 1 }),
      p("stat", "c", { x: 0, y: 6, w: 12, h: 4 }),
    ];
    const out = movePanel(panels, 1, { x: 12, y: 6, w: 12, h: 4 });
    expect(out.map((x) => x.title)).toEqual(["r1", "b", "r2", "c", "a"]);
    const byTitle = Object.fromEntries(out.map((x) => [x.title, x.grid]));
    expect(byTitle.b).toEqual({ x: 12, y: 1, w: 12, h: 4 });
    expect(byTitle.r2!.y).toBe(5);
    expect(byTitle.a).toEqual({ x: 12, y: 6, w: 12, h: 4 });
    expect(byTitle.c).toEqual({ x: 0, y: 6, w: 12, h: 4 });
  });
  test("moving within a row keeps the order of the list", () => {
    const panels = [p("row", "r1", { x: 0, y: 0, w: 24, h: 1 }), p("stat", "a", { x: 0, y: 1, w: 12, h: 4 })];
    const out = movePanel(panels, 1, { x: 6, y: 1, w: 12, h: 4 });
    expect(out.map((x) => x.title)).toEqual(["r1", "a"]);
    expect(out[1].grid).toEqual({ x: 6, y: 1, w: 12, h: 4 });
  });
});

import { yRange } from "../panels/TimeSeries";
describe("time series y range", () => {
  test("flat, positive, explicit and stacked", () => {
    expect(yRange(1, 1)).toEqual([0, 1.1]);
    expect(yRange(0, 0)).toEqual([0, 1]);
    expect(yRange(10, 20)).toEqual([9.5, 20.5]);
    expect(yRange(10, 20, undefined, undefined, true)).toEqual([0, 20.5]);
    expect(yRange(-5, 5)).toEqual([-5, 5.5]);
    expect(yRange(0.2, 0.4, 0, 1)).toEqual([0, 1]);
    expect(yRange(null, null)).toEqual([0, 1]);
  });
});
