// First-load benchmark of a 20-panel dashboard over 24 h: creates the dashboard through the API,
// opens it RUNS times in headless Chromium (fresh page each time) and reports the time from
// navigation to `window.__sextantPanelsDrawn` (every panel drawn once) plus main-thread long
// tasks (> 50 ms, the "jank" budget). Deletes the dashboard afterwards.
//
//   SEXTANT_URL=http://127.0.0.1:9595 RUNS=5 node e2e/bench-dashboard.mjs
import { chromium } from "playwright-core";

const base = (process.env.SEXTANT_URL ?? "http://127.0.0.1:9595").replace(/\/$/, "");
const runs = Number(process.env.RUNS ?? 5);
const uid = `bench-20-${Date.now()}`;

// A mix like a real host dashboard: mostly time series, some stats/gauges/tables.
const queries = [
  ["timeseries", 'sum by (mode) (rate(node_cpu_seconds_total[$__rate_interval]))'],
  ["timeseries", "rate(node_network_receive_bytes_total[$__rate_interval])"],
  ["stat", "node_memory_MemAvailable_bytes"],
  ["timeseries", "rate(process_cpu_seconds_total[$__rate_interval])"],
  ["gauge", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"],
  ["timeseries", "scrape_duration_seconds"],
  ["bargauge", "up"],
  ["timeseries", "node_load1"],
  ["timeseries", "rate(node_disk_io_time_seconds_total[$__rate_interval])"],
  ["table", "up"],
];
const panels = Array.from({ length: 20 }, (_, i) => {
  const [type, expr] = queries[i % queries.length];
  return { type, title: `Panel ${i + 1}`, grid: { x: (i % 3) * 8, y: Math.floor(i / 3) * 8, w: 8, h: 8 }, targets: [{ expr, ref: "A" }] };
});

async function api(path, init) {
  const r = await fetch(base + path, init);
  return r.json();
}

const created = await api("/api/sextant/dashboards", {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ message: "bench", dashboard: { uid, title: "Bench 20 panels", time: { from: "now-24h", to: "now" }, panels } }),
});
if (created.status !== "success") {
  console.log(`cannot create the dashboard: ${JSON.stringify(created)}`);
  process.exit(1);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
const times = [];
try {
  for (let i = 0; i < runs; i++) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.addInitScript(() => {
      window.__long = [];
      new PerformanceObserver((l) => l.getEntries().forEach((e) => window.__long.push(e.duration))).observe({ entryTypes: ["longtask"] });
    });
    const t0 = Date.now();
    await page.goto(`${base}/#/d/${uid}`);
    await page.waitForFunction(() => window.__sextantPanelsDrawn, null, { timeout: 60000 });
    const ms = Date.now() - t0;
    const { n, long } = await page.evaluate(() => ({ n: window.__sextantPanelsDrawn, long: window.__long }));
    times.push(ms);
    console.log(`run ${i + 1}: ${n} panels drawn in ${ms} ms; long tasks ${long.length} (max ${Math.round(Math.max(0, ...long))} ms)`);
    await page.close();
  }
} finally {
  await browser.close();
  await api(`/api/sextant/dashboards/${uid}`, { method: "DELETE" });
}
times.sort((a, b) => a - b);
console.log(`median ${times[Math.floor(times.length / 2)]} ms, best ${times[0]} ms over ${runs} runs (includes page load)`);
