// Silences: create one from the form (as the Alerts page's "Silence" button prefills it), see it
// in the list and through /api/v2/silences, then expire it from the list.
export const scenarios = [
  {
    name: "create and expire a silence",
    run: async ({ page, open, api, assert, until }) => {
      const marker = `e2e-${Date.now()}`;
      await open(`#/silences/new?matcher=${encodeURIComponent(`alertname="UiE2E"`)}&matcher=${encodeURIComponent(`instance=~"web-.*"`)}`);
      await page.waitForSelector("input.matcher");
      const ms = await page.$$eval("input.matcher", (els) => els.map((e) => e.value));
      assert(ms.length === 2 && ms[0] === 'alertname="UiE2E"' && ms[1] === 'instance=~"web-.*"', `prefilled matchers ${ms}`);
      await page.fill("input[name=duration]", "1h");
      await page.fill("input[name=createdBy]", "e2e");
      await page.fill("textarea[name=comment]", marker);
      await page.click("[data-testid=save-silence]");
      await page.waitForSelector(".silence-table");
      const sil = await until("silence in the API", async () => {
        const list = await api("/api/v2/silences");
        return list.find((s) => s.comment === marker);
      });
      assert(sil.status.state === "active", `state ${sil.status.state}`);
      assert(sil.createdBy === "e2e", `createdBy ${sil.createdBy}`);
      const m = Object.fromEntries(sil.matchers.map((x) => [x.name, x]));
      assert(m.alertname?.value === "UiE2E" && !m.alertname.isRegex, JSON.stringify(sil.matchers));
      assert(m.instance?.value === "web-.*" && m.instance.isRegex, JSON.stringify(sil.matchers));
      const hours = (Date.parse(sil.endsAt) - Date.parse(sil.startsAt)) / 3600e3;
      assert(Math.abs(hours - 1) < 0.01, `duration ${hours}h`);

      await page.click(`tr[data-silence-id="${sil.id}"] [data-action=expire]`);
      await until("silence expired in the API", async () => {
        const list = await api("/api/v2/silences");
        return list.find((s) => s.id === sil.id)?.status.state === "expired";
      });
      await page.click("[data-state=expired]");
      await page.waitForSelector(`tr[data-silence-id="${sil.id}"]`);
    },
  },
  {
    name: "silence button on a firing alert",
    run: async ({ page, open, fixture, assert }) => {
      if (!fixture?.alert) return; // only when the caller loaded an always-firing rule
      await open("#/alerts");
      const card = page.locator(".alert-card", { hasText: fixture.alert });
      await card.first().waitFor({ timeout: 60000 });
      await card.first().locator("text=Silence").click();
      await page.waitForSelector("input.matcher");
      const ms = await page.$$eval("input.matcher", (els) => els.map((e) => e.value));
      assert(ms.includes(`alertname="${fixture.alert}"`), `matchers ${ms}`);
    },
  },
];
