// Development and test stand-in for the dashboards API (/api/sextant/dashboards…) until the
// backend on branch dash lands: serves ui/dist, keeps dashboards in memory (seeded from
// src/dashboard/fixtures/*.json as "builtin"), and proxies every other /api and /-/ request to
// UPSTREAM (a real Sextant or Prometheus). Import does a deliberately small Grafana conversion so
// the import page can be exercised; the real converter is the backend's.
//
//   UPSTREAM=http://127.0.0.1:9090 PORT=8099 [FIXTURES=dir-of-json-dashboards] node e2e/dash-mock.mjs
import http from "node:http";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, "..", "dist");
const upstream = (process.env.UPSTREAM ?? "http://127.0.0.1:9090").replace(/\/$/, "");
const port = Number(process.env.PORT ?? 0);

/** uid → { source, path, versions: [{version, updated, message, dashboard}] } */
const store = new Map();

async function seed() {
  const dir = process.env.FIXTURES ? path.resolve(process.env.FIXTURES) : path.resolve(here, "..", "src", "dashboard", "fixtures");
  for (const f of (await readdir(dir)).filter((f) => f.endsWith(".json"))) {
    const d = JSON.parse(await readFile(path.join(dir, f), "utf8"));
    store.set(d.uid, { source: "builtin", path: `fixtures/${f}`, versions: [{ version: 1, updated: new Date().toISOString(), message: "provisioned", dashboard: d }] });
  }
}

const ok = (res, data, code = 200) => send(res, code, { status: "success", data });
const bad = (res, code, error, errorType = "bad_data") => send(res, code, { status: "error", errorType, error });
function send(res, code, body) {
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}
const latest = (e) => e.versions[e.versions.length - 1];

async function body(req) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > 20 << 20) throw new Error("body too large");
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const TYPE = { graph: "timeseries", timeseries: "timeseries", stat: "stat", singlestat: "stat", gauge: "gauge", bargauge: "bargauge", barchart: "barchart", piechart: "pie", heatmap: "heatmap", table: "table", text: "text", row: "row" };

function convert(g) {
  const report = [];
  const panels = [];
  const add = (p) => {
    const problems = [];
    const type = TYPE[p.type];
    if (!type) problems.push(`panel type "${p.type}" is not supported; converted to a text panel`);
    const out = { type: type ?? "text", title: p.title ?? "" };
    if (p.gridPos) out.grid = { x: p.gridPos.x ?? 0, y: p.gridPos.y ?? 0, w: p.gridPos.w ?? 12, h: p.gridPos.h ?? 8 };
    if (type === "row") out.collapsed = !!p.collapsed;
    if (!type) out.text = `Unsupported Grafana panel type \`${p.type}\`.`;
    if (p.targets && type !== "row" && type) {
      out.targets = p.targets.filter((t) => t.expr).map((t) => ({ expr: t.expr, ...(t.legendFormat ? { legend: t.legendFormat } : {}), ...(t.instant ? { instant: true } : {}), ref: t.refId ?? "A" }));
    }
    const unit = p.fieldConfig?.defaults?.unit ?? p.yaxes?.[0]?.format;
    if (unit) out.unit = unit;
    const steps = p.fieldConfig?.defaults?.thresholds?.steps;
    if (steps) out.thresholds = steps.map((s) => ({ value: s.value ?? null, color: s.color }));
    if (type === "text") out.text = p.options?.content ?? p.content ?? out.text ?? "";
    panels.push(out);
    report.push({ panel_id: p.id, title: p.title ?? "", type: p.type, problems });
    for (const c of p.panels ?? []) add(c);
  };
  for (const p of g.panels ?? []) add(p);
  const variables = (g.templating?.list ?? []).map((v) => {
    const cur = v.current?.value;
    return {
      name: v.name, ...(v.label ? { label: v.label } : {}), type: ["query", "custom", "interval", "constant", "textbox"].includes(v.type) ? v.type : "constant",
      ...(typeof v.query === "string" ? { query: v.query } : v.query?.query ? { query: v.query.query } : {}),
      ...(v.regex ? { regex: v.regex } : {}), ...(v.multi ? { multi: true } : {}), ...(v.includeAll ? { include_all: true } : {}),
      ...(cur !== undefined ? { current: Array.isArray(cur) ? cur : [cur] } : {}),
    };
  });
  const uid = (g.uid ?? g.title ?? "imported").replace(/[^a-zA-Z0-9_-]/g, "-").slice(0, 40);
  return { dashboard: { uid, title: g.title ?? uid, tags: g.tags ?? [], time: g.time, variables, panels }, report };
}

async function api(req, res, url) {
  const parts = url.pathname.replace(/^\/api\/sextant\/dashboards\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const m = req.method;
  if (parts.length === 0) {
    if (m === "GET") return ok(res, [...store.entries()].map(([uid, e]) => ({ uid, title: latest(e).dashboard.title, tags: latest(e).dashboard.tags ?? [], source: e.source, path: e.path, version: latest(e).version, updated: latest(e).updated })));
    if (m === "POST") {
      const b = JSON.parse(await body(req));
      const d = b.dashboard;
      const uid = d.uid || d.title.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").slice(0, 40);
      if (store.has(uid)) return bad(res, 409, `dashboard ${uid} exists`, "conflict");
      store.set(uid, { source: "db", versions: [{ version: 1, updated: new Date().toISOString(), message: b.message ?? "", dashboard: { ...d, uid } }] });
      return ok(res, { uid, version: 1 });
    }
  }
  if (parts[0] === "import" && m === "POST") {
    let g;
    try {
      g = JSON.parse(await body(req));
    } catch (e) {
      return bad(res, 400, `invalid JSON: ${e.message}`);
    }
    const list = (Array.isArray(g) ? g : [g]).map((x) => x.dashboard ?? x);
    const out = list.map(convert);
    if (url.searchParams.get("save") === "true") {
      for (const r of out) {
        store.set(r.dashboard.uid, { source: "db", versions: [{ version: 1, updated: new Date().toISOString(), message: "import", dashboard: r.dashboard }] });
        r.saved_uid = r.dashboard.uid;
      }
    }
    return ok(res, out);
  }
  const e = store.get(parts[0]);
  if (!e) return bad(res, 404, `dashboard ${parts[0]} not found`, "not_found");
  if (parts.length === 1) {
    if (m === "GET") return ok(res, { dashboard: latest(e).dashboard, meta: { source: e.source, path: e.path, version: latest(e).version, updated: latest(e).updated, provisioned: e.source !== "db" } });
    if (m === "PUT") {
      const b = JSON.parse(await body(req));
      if (b.version !== latest(e).version) return bad(res, 409, `version ${b.version} is not the latest (${latest(e).version})`, "conflict");
      e.versions.push({ version: latest(e).version + 1, updated: new Date().toISOString(), message: b.message ?? "", dashboard: { ...b.dashboard, uid: parts[0] } });
      e.source = "db";
      return ok(res, { uid: parts[0], version: latest(e).version });
    }
    if (m === "DELETE") {
      store.delete(parts[0]);
      return ok(res, null);
    }
  }
  if (parts[1] === "versions") {
    if (parts.length === 2) return ok(res, e.versions.map((v) => ({ version: v.version, updated: v.updated, message: v.message })).reverse());
    const v = e.versions.find((x) => x.version === Number(parts[2]));
    return v ? ok(res, v.dashboard) : bad(res, 404, "no such version", "not_found");
  }
  if (parts[1] === "export") {
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end(JSON.stringify(latest(e).dashboard, null, 2));
  }
  return bad(res, 404, "not found", "not_found");
}

function proxy(req, res) {
  const target = new URL(req.url, upstream);
  const p = http.request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  p.on("error", (e) => bad(res, 502, `upstream: ${e.message}`, "unavailable"));
  req.pipe(p);
}

const MIME = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png" };

async function serveStatic(res, pathname) {
  const rel = pathname === "/" ? "index.html" : pathname.replace(/^\/+/, "");
  const file = path.resolve(dist, rel);
  if (!file.startsWith(dist)) return bad(res, 400, "bad path");
  try {
    const data = await readFile(file);
    res.writeHead(200, { "Content-Type": MIME[path.extname(file)] ?? "application/octet-stream" });
    res.end(data);
  } catch {
    const data = await readFile(path.join(dist, "index.html"));
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(data);
  }
}

await seed();
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname.startsWith("/api/sextant/dashboards")) {
    api(req, res, url).catch((e) => bad(res, 400, String(e.message ?? e)));
  } else if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/-/")) proxy(req, res);
  else serveStatic(res, url.pathname).catch((e) => bad(res, 500, String(e)));
});
server.listen(port, "127.0.0.1", () => console.log(`dash-mock listening on http://127.0.0.1:${server.address().port} (upstream ${upstream})`));
