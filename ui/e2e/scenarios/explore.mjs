// Explore: type a query, see one legend entry per series written by the test, switch the time
// range (to a range without data and back), the table view's values, several queries on one
// graph, and a parse error reported with its position.
//
// SEXTANT_E2E_FIXTURE: {"counter": {"name": "...", "series": N},
//                       "gauge": {"name": "...", "label": "room", "values": {"kitchen": "21.5", …}}}

async function typeQuery(page, index, text) {
  const ed = page.locator(".query-row").nth(index).locator(".cm-content");
  await ed.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Backspace");
  await page.keyboard.type(text);
  await page.keyboard.press("Escape"); // close autocompletion
}

async function legendCount(page) {
  return page.locator(".graph-legend .legend-item").count();
}

export const scenarios = [
  {
    name: "explore graph, time range and query stats",
    run: async ({ page, open, fixture, assert, until, screenshot }) => {
      assert(fixture?.counter, "SEXTANT_E2E_FIXTURE with a counter is required");
      const { name, series } = fixture.counter;
      await open("#/explore");
      await typeQuery(page, 0, `rate(${name}[5m])`);
      await page.keyboard.press("Shift+Enter");
      await until(`${series} legend entries`, async () => (await legendCount(page)) === series);
      assert((await page.locator(".graph-plot canvas").count()) > 0, "no chart canvas");
      const stats = await page.locator(".query-stats").first().textContent();
      assert(stats.includes(`${series} series`), `stats: ${stats}`);
      assert(/\d+ samples queried/.test(stats), `stats lack samples: ${stats}`);
      assert(page.url().includes("expr=rate"), `URL does not keep the query: ${page.url()}`);
      // Hover the chart: the tooltip lists values.
      // The legend can be there a frame before uPlot has laid out its plot area.
      let box = null;
      await until("the chart's plot area", async () => (box = await page.locator(".graph-plot .u-over").boundingBox()) !== null);
      await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
      await until("tooltip", async () => (await page.locator(".graph-tip .tip-row").count()) > 0);
      await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.3);
      await screenshot("explore");
      // Legend click hides a series.
      await page.locator(".legend-item").first().click();
      await until("a hidden legend entry", async () => (await page.locator(".legend-item.off").count()) === 1);
      await page.mouse.move(0, 0);

      // A range two days ago for one hour holds none of the data.
      await page.click("[data-testid=timepicker]");
      const from = Math.floor(Date.now() / 1000) - 2 * 86400;
      await page.fill(".tp-abs input[name=from]", String(from));
      await page.fill(".tp-abs input[name=to]", String(from + 3600));
      await page.click(".tp-abs button.primary");
      await until("empty graph", async () => (await legendCount(page)) === 0 && (await page.locator(".graph-empty").count()) === 1);
      assert(page.url().includes(`from=${from}`), `URL lacks the absolute range: ${page.url()}`);
      // Back to a relative preset.
      await page.click("[data-testid=timepicker]");
      await page.click(".tp-presets >> text=Last 30 minutes");
      await until(`${series} legend entries again`, async () => (await legendCount(page)) === series);
      assert(page.url().includes("from=now-30m"), `URL lacks the preset: ${page.url()}`);

      // A deep link (as dashboards use) opens the same state.
      await open(`#/explore?expr=${encodeURIComponent(name)}&from=now-1h&to=now`);
      await until(`${series} legend entries from a link`, async () => (await legendCount(page)) === series);
    },
  },
  {
    name: "explore table view values and several queries",
    run: async ({ page, open, fixture, assert, until }) => {
      assert(fixture?.gauge && fixture?.counter, "SEXTANT_E2E_FIXTURE with a gauge is required");
      const g = fixture.gauge;
      await open(`#/explore?expr=${encodeURIComponent(g.name)}&tab=table`);
      const want = Object.keys(g.values).length;
      await until(`${want} table rows`, async () => (await page.locator(".result-table tbody tr").count()) === want);
      const rows = await page.$$eval(".result-table tbody tr", (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim())));
      for (const [label, value] of Object.entries(g.values)) {
        const row = rows.find((r) => r[0].includes(`${g.label}="${label}"`));
        assert(row, `no row for ${g.label}="${label}" in ${JSON.stringify(rows)}`);
        assert(row[1] === value, `${label}: table shows ${row[1]}, want ${value}`);
      }
      // JSON tab shows the raw answer.
      await page.click("[data-tab=json]");
      const json = await page.locator("[data-testid=raw-json]").textContent();
      assert(json.includes('"resultType"'), "raw JSON lacks resultType");
      // Two queries on one graph.
      await page.click("[data-tab=graph]");
      await page.click("text=+ Add query");
      await typeQuery(page, 1, fixture.counter.name);
      await page.click("[data-testid=run]");
      const total = want + fixture.counter.series;
      await until(`${total} legend entries for A and B`, async () => (await legendCount(page)) === total);
      const names = await page.$$eval(".legend-item .legend-name", (els) => els.map((e) => e.textContent));
      assert(names.filter((n) => n.startsWith("A: ")).length === want, `A entries: ${names}`);
      assert(names.filter((n) => n.startsWith("B: ")).length === fixture.counter.series, `B entries: ${names}`);
    },
  },
  {
    name: "explore parse error with position",
    run: async ({ page, open, assert, until, allowConsole }) => {
      allowConsole(/status of 400 .*\/api\/v1\/query_range/);
      await open("#/explore");
      await typeQuery(page, 0, "up + * 2"); // no brackets: the editor closes those itself
      await page.keyboard.press("Control+Enter");
      const err = await until("error message", async () => {
        const t = await page.locator(".query-error").textContent({ timeout: 500 }).catch(() => "");
        return t || false;
      });
      assert(/Error at line 1, column 6\b/.test(err), `error without the right position: ${err}`);
      await until("error marked in the editor", async () => (await page.locator(".cm-lintRange-error").count()) > 0);
    },
  },
];
