// Every page of the UI opens and renders without console errors; screenshots of the main ones.
const pages = [
  { hash: "#/explore", h1: "Explore" },
  { hash: "#/alerts", h1: "Alerts", shot: "alerts", ready: ".alert-card, .empty" },
  { hash: "#/rules", h1: "Rules", ready: ".rule-group, .empty" },
  { hash: "#/silences", h1: "Silences", ready: ".silence-table, .empty" },
  { hash: "#/silences/new", h1: "New silence" },
  { hash: "#/notifications", h1: "Notifications", ready: "table, .empty" },
  { hash: "#/targets", h1: "Targets", shot: "targets", ready: ".target-pool, .empty" },
  { hash: "#/status", h1: "Status", shot: "status", ready: "[data-testid=num-series]" },
];

export const scenarios = [
  ...pages.map((p) => ({
    name: `page ${p.hash}`,
    run: async ({ page, open, assert, screenshot }) => {
      await open(p.hash);
      const h1 = await page.waitForSelector("main h1");
      const text = (await h1.textContent()).trim();
      assert(text === p.h1, `heading is "${text}", want "${p.h1}"`);
      if (p.ready) await page.waitForSelector(p.ready);
      const errs = await page.$$eval("p.error", (els) => els.map((e) => e.textContent));
      assert(errs.length === 0, `page shows errors: ${errs.join("; ")}`);
      if (p.shot) await screenshot(p.shot);
    },
  })),
  {
    name: "status shows the TSDB head",
    run: async ({ page, open, assert, api }) => {
      await open("#/status");
      const shown = (await (await page.waitForSelector("[data-testid=num-series]")).textContent()).replace(/\D/g, "");
      const tsdb = await api("/api/v1/status/tsdb");
      assert(Number(shown) > 0, `series count ${shown}`);
      // Series may be added between the two reads (self-scrape); the UI cannot show more than exist now.
      assert(Number(shown) <= tsdb.data.headStats.numSeries, `UI ${shown} > API ${tsdb.data.headStats.numSeries}`);
      await page.waitForSelector(".stat-table td.mono");
    },
  },
];
