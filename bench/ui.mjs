// Web UI benchmark, run by bench/ui.sh: first load (cold browser cache, fresh page) of Explore
// with a 24-hour query, and of a dashboard when one is named. Prints JSON lines.
//
//   node bench/ui.mjs --url http://127.0.0.1:PORT [--runs 5] [--write] [--dashboard UID --panels N]
//
// --write first stores 24 h of 20 series (1-minute resolution, oldest first) through
// /api/v1/import/prometheus. Explore is "drawn" when its legend lists every series and the uPlot
// canvas exists. A dashboard is "drawn" when the page sets document.body.dataset.panelsDrawn
// (and window.__sextantPanelsDrawn) to the number of panels, which the dashboard page does once
// every panel has drawn.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../ui/package.json"));
const { chromium } = require("playwright-core");

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const base = opt("url", "http://127.0.0.1:9595").replace(/\/$/, "");
const runs = Number(opt("runs", "5"));
// Without --dashboard, a 20-panel dashboard over the written data is created (and deleted after).
let dashboard = opt("dashboard", "");
const panels = Number(opt("panels", "20"));
const SERIES = 20;

async function writeData() {
  const now = Math.floor(Date.now() / 60000) * 60000;
  const t0 = Date.now();
  for (let t = now - 24 * 3600e3; t <= now; t += 60000) {
    let body = "# TYPE bench_ui_requests_total counter\n";
    for (let i = 0; i < SERIES; i++) {
      const v = Math.floor((t / 1000) * (i + 1)) % 1e9;
      body += `bench_ui_requests_total{instance="host-${i}",job="bench"} ${v} ${t}\n`;
    }
    const r = await fetch(`${base}/api/v1/import/prometheus`, { method: "POST", body });
    if (!r.ok) throw new Error(`import: ${r.status} ${await r.text()}`);
  }
  return Date.now() - t0;
}

async function measure(browser, url, ready) {
  const ctx = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await ctx.newPage();
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(ready, null, { timeout: 60000, polling: "raf" });
  const ms = Date.now() - t0;
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType("navigation")[0];
    return n ? { domContentLoaded: Math.round(n.domContentLoadedEventEnd), load: Math.round(n.loadEventEnd) } : {};
  });
  await ctx.close();
  return { ms, ...nav };
}

/** Creates a dashboard of `n` panels over bench_ui_requests_total (a mix like a real service
 * dashboard: mostly time series, plus stats, gauges, bar gauges, a table and a pie). */
async function createDashboard(n) {
  const r = "$__rate_interval";
  const kinds = [
    ["timeseries", `sum by (instance) (rate(bench_ui_requests_total[${r}]))`],
    ["timeseries", `sum(rate(bench_ui_requests_total[${r}]))`],
    ["stat", `sum(rate(bench_ui_requests_total[${r}]))`],
    ["timeseries", `topk(5, rate(bench_ui_requests_total[${r}]))`],
    ["gauge", `max(rate(bench_ui_requests_total[${r}])) / 20`],
    ["timeseries", `avg by (job) (rate(bench_ui_requests_total[${r}]))`],
    ["bargauge", `rate(bench_ui_requests_total[5m])`],
    ["timeseries", `stddev(rate(bench_ui_requests_total[${r}]))`],
    ["table", `rate(bench_ui_requests_total[5m])`],
    ["pie", `sum by (instance) (rate(bench_ui_requests_total[5m]))`],
  ];
  const panels = Array.from({ length: n }, (_, i) => {
    const [type, expr] = kinds[i % kinds.length];
    const instant = ["bargauge", "table", "pie"].includes(type);
    return { type, title: `Panel ${i + 1}`, grid: { x: (i % 3) * 8, y: Math.floor(i / 3) * 8, w: 8, h: 8 }, targets: [{ expr, ref: "A", legend: "{{instance}}", instant }] };
  });
  const uid = `bench-ui-${n}-${Date.now()}`;
  const res = await fetch(`${base}/api/sextant/dashboards`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message: "bench", dashboard: { uid, title: `Bench ${n} panels`, time: { from: "now-24h", to: "now" }, panels } }),
  });
  if (!res.ok) throw new Error(`create dashboard: ${res.status} ${await res.text()}`);
  return uid;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  if (args.includes("--write")) console.log(JSON.stringify({ write_ms: await writeData(), series: SERIES, hours: 24 }));
  // launch() gives the browser a fresh temporary profile; every run also gets a new context.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const expr = "sum by (instance) (rate(bench_ui_requests_total[5m]))";
    const url = `${base}/#/explore?expr=${encodeURIComponent(expr)}&from=now-24h&to=now`;
    const ready = `document.querySelectorAll('.graph-legend .legend-item').length >= ${SERIES} && !!document.querySelector('.graph-plot canvas')`;
    await measure(browser, url, ready); // warm the server side (not the browser: every run has a fresh context)
    const xs = [];
    for (let i = 0; i < runs; i++) xs.push((await measure(browser, url, ready)).ms);
    console.log(JSON.stringify({ page: "explore", query: expr, range: "24h", series: SERIES, runs: xs, median_ms: median(xs) }));
    let created = false;
    if (!dashboard && !args.includes("--no-dashboard")) {
      dashboard = await createDashboard(panels);
      created = true;
    }
    if (dashboard) {
      const durl = `${base}/#/d/${encodeURIComponent(dashboard)}?from=now-24h&to=now`;
      const dready = `Number(document.body.dataset.panelsDrawn || window.__sextantPanelsDrawn || 0) >= ${panels}`;
      await measure(browser, durl, dready);
      const ds = [];
      for (let i = 0; i < runs; i++) ds.push((await measure(browser, durl, dready)).ms);
      console.log(JSON.stringify({ page: "dashboard", uid: dashboard, panels, range: "24h", runs: ds, median_ms: median(ds) }));
      if (created) await fetch(`${base}/api/sextant/dashboards/${encodeURIComponent(dashboard)}`, { method: "DELETE" });
    }
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
