// Dashboards in the browser: a built-in dashboard draws every panel, a Grafana dashboard imported
// through the import page renders its panels, and changing a variable re-queries the panels and
// lands in the URL.
//
// Optional SEXTANT_E2E_FIXTURE keys: "dashboard" (uid of the built-in to open; default: the first
// builtin in the list).
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Waits for the dashboard's "all panels drawn" signal and returns N. */
async function panelsDrawn(page, until) {
  return until("all panels drawn", () => page.evaluate(() => window.__sextantPanelsDrawn), 30000);
}

async function panelErrors(page) {
  return page.$$eval(".panel .panel-error", (els) => els.map((e) => `${e.closest(".panel")?.querySelector(".panel-title")?.textContent}: ${e.textContent}`));
}

export const scenarios = [
  {
    name: "dashboard: a built-in dashboard draws all its panels",
    run: async ({ page, open, api, fixture, assert, until, screenshot }) => {
      const list = await api("/api/sextant/dashboards");
      assert(list.status === "success", `list: ${JSON.stringify(list).slice(0, 200)}`);
      const uid = fixture?.dashboard ?? list.data.find((d) => d.source === "builtin")?.uid;
      assert(uid, "no built-in dashboard");
      await open("#/dashboards");
      await page.waitForSelector(`.dash-table tr[data-uid="${uid}"]`);
      await page.click(`.dash-table tr[data-uid="${uid}"] a`);
      const n = await panelsDrawn(page, until);
      const shown = await page.locator(".grid .panel").count();
      assert(n === shown && n > 0, `drawn ${n}, panels on the page ${shown}`);
      const errs = await panelErrors(page);
      assert(errs.length === 0, `panels show errors: ${errs.join("; ")}`);
      // Time series panels draw with uPlot.
      const ts = await page.locator('.panel[data-panel-type="timeseries"]').count();
      const canvases = await page.locator('.panel[data-panel-type="timeseries"] .uplot canvas').count();
      assert(canvases === ts, `${ts} time series panels but ${canvases} charts`);
      await screenshot("dashboard");
      // "Explore" opens the panel's query (variables filled in) in Explore.
      const tsPanel = page.locator('.grid .panel[data-panel-type="timeseries"]').first();
      if ((await tsPanel.count()) > 0) {
        await tsPanel.hover();
        const link = await tsPanel.locator('a[title="Explore"]').getAttribute("href");
        const expr = new URLSearchParams(link.split("?")[1]).get("expr");
        assert(expr && !/\$(__rate_interval|__interval)\b/.test(expr), `Explore link: ${link}`);
        await tsPanel.locator('a[title="Explore"]').click();
        await until("Explore shows the query", async () => (await page.locator(".query-row .cm-content").first().textContent()) === expr);
        await page.goBack();
      }
      await panelsDrawn(page, until);
      // View one panel large and come back.
      const first = page.locator(".grid .panel").first();
      await first.hover();
      await first.locator('button[title="View"]').click();
      await page.waitForSelector(".view-panel .panel");
      // The URL is written by an effect after the panel renders: wait for it, not race it.
      await until("view= in the URL", async () => page.url().includes("view="), 5000);
    },
  },
  {
    name: "dashboard: import a Grafana dashboard and see its panels",
    run: async ({ page, open, api, assert, until }) => {
      const text = await readFile(path.join(here, "..", "fixtures", "grafana-small.json"), "utf8");
      await api("/api/sextant/dashboards/e2e-grafana-small", { method: "DELETE" }).catch(() => {});
      await open("#/import");
      await page.fill(".import-input textarea", text);
      await page.click("text=Preview");
      await page.waitForSelector(".import-result");
      const report = await page.locator(".import-result").textContent();
      assert(report.includes("E2E Grafana import"), `preview: ${report.slice(0, 300)}`);
      assert(report.includes("Plugin panel"), `the unsupported panel is not reported: ${report.slice(0, 300)}`);
      await page.click("text=Import and save");
      await until("the imported dashboard opens", () => page.url().includes("#/d/"));
      const uid = decodeURIComponent(page.url().split("#/d/")[1].split("?")[0]);
      const n = await panelsDrawn(page, until);
      const got = await api(`/api/sextant/dashboards/${encodeURIComponent(uid)}`);
      const want = got.data.dashboard.panels.filter((p) => p.type !== "row").length;
      assert(n === want, `drawn ${n} panels, the imported dashboard has ${want}`);
      const stat = await page.locator('.panel[data-panel-type="stat"] .stat-value').first().textContent();
      assert(/^\d+$/.test(stat.trim()) && Number(stat) > 0, `stat shows "${stat}"`);
      await api(`/api/sextant/dashboards/${encodeURIComponent(uid)}`, { method: "DELETE" });
    },
  },
  {
    name: "dashboard: changing a variable re-queries panels and updates the URL",
    run: async ({ page, open, api, assert, until }) => {
      const uid = `e2e-vars-${Date.now()}`;
      const jobs = (await api(`/api/v1/label/job/values?match[]=${encodeURIComponent("up")}`)).data;
      assert(jobs.length >= 2, `need two scrape jobs with an up series, have ${JSON.stringify(jobs)}`);
      const created = await api("/api/sextant/dashboards", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          message: "e2e",
          dashboard: {
            uid,
            title: "E2E variables",
            time: { from: "now-15m", to: "now" },
            variables: [{ name: "job", type: "query", query: "label_values(up, job)", include_all: true, multi: true, current: ["$__all"] }],
            panels: [
              { type: "table", title: "Up", grid: { x: 0, y: 0, w: 24, h: 8 }, targets: [{ expr: 'up{job=~"$job"}', instant: true, ref: "A" }] },
              { type: "stat", title: "Count", grid: { x: 0, y: 8, w: 6, h: 4 }, targets: [{ expr: 'count(up{job=~"$job"})', ref: "A" }] },
            ],
          },
        }),
      });
      assert(created.status === "success", `create: ${JSON.stringify(created)}`);
      try {
        await open(`#/d/${uid}`);
        await panelsDrawn(page, until);
        const jobCol = async () => {
          const headers = await page.$$eval(".panel table.data th", (els) => els.map((e) => e.textContent.replace(/[▲▼]/g, "").trim()));
          const i = headers.indexOf("job");
          return page.$$eval(".panel table.data tbody tr", (rows, i) => rows.map((r) => r.children[i]?.textContent), i);
        };
        await until("rows for every job", async () => new Set(await jobCol()).size === jobs.length);
        const allCount = await page.locator(".stat-value").textContent();
        // Pick only the first job.
        await page.click('.var[data-var="job"] .var-value');
        await page.click('.multi-menu label:has-text("All") input');
        await page.click(`.multi-menu label:has-text("${jobs[0]}") input`);
        await until("the URL carries the selection", () => page.url().includes(`var-job=${encodeURIComponent(jobs[0])}`));
        await until(`rows only for ${jobs[0]}`, async () => {
          const col = await jobCol();
          return col.length > 0 && col.every((j) => j === jobs[0]);
        });
        await until("the stat changes", async () => (await page.locator(".stat-value").textContent()) !== allCount);
        // Reload: the selection comes back from the URL.
        await page.reload();
        await page.waitForSelector(".panel table.data tbody tr");
        await until("selection restored", async () => (await page.locator('.var[data-var="job"] .var-value').textContent()).includes(jobs[0]));
      } finally {
        await api(`/api/sextant/dashboards/${uid}`, { method: "DELETE" });
      }
    },
  },
  {
    name: "dashboard: edit, drag, save, restore a version and see a version conflict",
    run: async ({ page, open, api, assert, until, errors }) => {
      const uid = `e2e-edit-${Date.now()}`;
      const json = (method, body) => ({ method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const original = {
        uid,
        title: "E2E edit",
        time: { from: "now-15m", to: "now" },
        panels: [
          { type: "stat", title: "Left", grid: { x: 0, y: 0, w: 12, h: 6 }, targets: [{ expr: "count(up)", ref: "A" }] },
          { type: "timeseries", title: "Right", grid: { x: 12, y: 0, w: 12, h: 6 }, targets: [{ expr: "up", ref: "A" }] },
        ],
      };
      const created = await api("/api/sextant/dashboards", json("POST", { dashboard: original, message: "e2e" }));
      assert(created.status === "success", `create: ${JSON.stringify(created)}`);
      const current = async () => (await api(`/api/sextant/dashboards/${uid}`)).data;
      try {
        await open(`#/d/${uid}`);
        await page.waitForFunction(() => window.__sextantPanelsDrawn === 2);
        await page.click("button:text-is('Edit')");
        // Drag "Right" onto the left column: it takes (0,0) and pushes "Left" down.
        const right = page.locator('.panel:has(.panel-title:text-is("Right"))');
        const box = await right.locator(".panel-header").boundingBox();
        await page.mouse.move(box.x + 40, box.y + 10);
        await page.mouse.down();
        await page.mouse.move(box.x + 40 - box.width / 2, box.y + 12, { steps: 5 });
        await page.mouse.move(box.x + 40 - box.width - 8, box.y + 12, { steps: 5 });
        await page.mouse.up();
        // Rename "Left" in the side form.
        const left = page.locator('.panel:has(.panel-title:text-is("Left"))');
        await left.hover();
        await left.locator('button[title="Edit"]').click();
        await page.fill('.side-form .field:has-text("Title") input', "Renamed");
        await page.press('.side-form .field:has-text("Title") input', "Tab");
        await until("the grid shows the new title", async () => (await page.locator('.panel-title:text-is("Renamed")').count()) === 1);
        await page.fill(".save-msg", "rename and move");
        await page.click("button:text-is('Save')");
        await page.waitForSelector(".notice:has-text('Saved version')");
        let d = await current();
        const byTitle = Object.fromEntries(d.dashboard.panels.map((p) => [p.title, p.grid]));
        assert(byTitle.Renamed, `saved titles: ${Object.keys(byTitle)}`);
        assert(byTitle.Right.x === 0 && byTitle.Right.y === 0, `Right at ${JSON.stringify(byTitle.Right)}`);
        assert(byTitle.Renamed.y >= 6, `Left/Renamed not pushed down: ${JSON.stringify(byTitle.Renamed)}`);
        assert(d.meta.version === 2, `version ${d.meta.version}`);
        // History: restore version 1.
        await page.click("button:text-is('Versions')");
        await page.waitForSelector(".side-form td:has-text('v1')");
        await page.click(".side-form tr:has(td:text-is('v1')) button:text-is('Restore')");
        await page.waitForSelector(".notice:has-text('Restored version 1')");
        d = await current();
        assert(d.dashboard.panels.some((p) => p.title === "Left"), "restore did not bring back the old title");
        // Someone else saves; our next save is refused with a clear message.
        const other = await api(`/api/sextant/dashboards/${uid}`, json("PUT", { dashboard: { ...d.dashboard, title: "Changed elsewhere" }, version: d.meta.version, message: "other" }));
        assert(other.status === "success", `other save: ${JSON.stringify(other)}`);
        await page.fill(".save-msg", "mine");
        await page.click("button:text-is('+ Row')");
        await page.click("button:text-is('Save')");
        await page.waitForSelector(".panel-error:has-text('Version conflict')");
        assert((await current()).dashboard.title === "Changed elsewhere", "the conflicting save overwrote the other one");
        // The browser logs the expected 409 response; it is the point of this step, not a failure.
        const expected = errors.findIndex((e) => e.includes("409") && e.includes(uid));
        assert(expected >= 0, `no 409 logged: ${errors.join("; ")}`);
        errors.splice(expected, 1);
      } finally {
        await api(`/api/sextant/dashboards/${uid}`, { method: "DELETE" });
      }
    },
  },
  {
    name: "dashboard: create a new dashboard from the list",
    run: async ({ page, open, api, assert, until }) => {
      const title = `E2E new ${Date.now()}`;
      await open("#/dashboards");
      await page.click("text=New dashboard");
      await page.waitForSelector(".dashboard.edit-mode");
      await page.click("button:text-is('Settings')");
      await page.fill('.side-form .field:has-text("Title") input', title);
      await page.press('.side-form .field:has-text("Title") input', "Tab");
      await page.fill('.side-form .field:has-text("Tags") input', "e2e, new");
      await page.press('.side-form .field:has-text("Tags") input', "Tab");
      // Edit the panel's query and unit.
      const panel = page.locator(".grid .panel").first();
      await panel.hover();
      await panel.locator('button[title="Edit"]').click();
      await page.fill(".side-form textarea.expr", "count(up)");
      await page.press(".side-form textarea.expr", "Tab");
      await page.selectOption('.side-form .field:has-text("Type") select', "stat");
      await page.click("button:text-is('Save')");
      await until("the saved dashboard opens", () => /#\/d\/[^/?]+/.test(page.url()) && !page.url().includes("/new"));
      const uid = decodeURIComponent(page.url().split("#/d/")[1].split("?")[0]);
      try {
        await page.waitForFunction(() => window.__sextantPanelsDrawn === 1);
        const got = (await api(`/api/sextant/dashboards/${encodeURIComponent(uid)}`)).data.dashboard;
        assert(got.title === title, `title ${got.title}`);
        assert(JSON.stringify(got.tags) === JSON.stringify(["e2e", "new"]), `tags ${JSON.stringify(got.tags)}`);
        assert(got.panels.length === 1 && got.panels[0].type === "stat" && got.panels[0].targets[0].expr === "count(up)", `panels ${JSON.stringify(got.panels)}`);
        const v = await page.locator(".stat-value").textContent();
        assert(Number(v) > 0, `stat shows ${v}`);
      } finally {
        await api(`/api/sextant/dashboards/${encodeURIComponent(uid)}`, { method: "DELETE" });
      }
    },
  },
];
