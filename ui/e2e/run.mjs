// Browser tests: drives Debian's Chromium (playwright-core, headless) against a running Sextant.
//
//   SEXTANT_URL=http://127.0.0.1:9595 node e2e/run.mjs [name-filter]
//
// Each file in e2e/scenarios/ is one or more named scenarios: `export const scenarios = [{name,
// run: async (ctx) => …}]`. Every scenario gets a fresh page; console errors and uncaught page
// errors fail it. Optional environment:
//   SEXTANT_E2E_FIXTURE   JSON describing the data the caller wrote (see scenarios/explore.mjs)
//   SEXTANT_SCREENSHOTS   directory to save screenshots of the main pages into
//   CHROMIUM              browser binary (default /usr/bin/chromium)
// Prints "ok <name>" / "FAIL <name>: <reason>" per scenario and exits 1 if any failed.
import { readdir, mkdir, rm, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const base = (process.env.SEXTANT_URL ?? "http://127.0.0.1:9595").replace(/\/$/, "");
const shotsDir = process.env.SEXTANT_SCREENSHOTS ? path.resolve(process.env.SEXTANT_SCREENSHOTS) : null;
const fixture = process.env.SEXTANT_E2E_FIXTURE ? JSON.parse(process.env.SEXTANT_E2E_FIXTURE) : null;
const filter = process.argv[2] ?? "";

/** Console messages that are expected and not failures. */
function ignorable(msg) {
  const text = msg.text();
  // Endpoints of branches that may not be merged yet answer 404; the pages handle that.
  const url = msg.location()?.url ?? "";
  return /Failed to load resource.*404/.test(text) && /\/api\/sextant\//.test(url);
}

class Fail extends Error {}

export function assert(cond, message) {
  if (!cond) throw new Fail(message);
}

async function main() {
  const files = (await readdir(path.join(here, "scenarios"))).filter((f) => f.endsWith(".mjs")).sort();
  const all = [];
  for (const f of files) {
    const mod = await import(pathToFileURL(path.join(here, "scenarios", f)).href);
    for (const s of mod.scenarios ?? []) all.push({ ...s, file: f });
  }
  const selected = all.filter((s) => s.name.includes(filter));
  if (selected.length === 0) {
    console.log(`no scenarios match "${filter}"`);
    process.exit(1);
  }
  if (shotsDir) await mkdir(shotsDir, { recursive: true });

  const userDir = await mkdtemp(path.join(tmpdir(), "sextant-e2e-"));
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  let failed = 0;
  try {
    for (const s of selected) {
      const page = await browser.newPage();
      const errors = [];
      page.on("console", (m) => {
        if (m.type() === "error" && !ignorable(m)) errors.push(`console: ${m.text()} (${m.location()?.url ?? ""})`);
      });
      page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
      page.setDefaultTimeout(15000);
      const ctx = {
        page,
        base,
        fixture,
        assert,
        /** Opens a UI route ("#/explore?…") and waits for the app to render. */
        open: async (hash) => {
          await page.goto(`${base}/${hash}`);
          await page.waitForSelector("header.topbar");
        },
        /** Calls the API from Node (not the page) and returns parsed JSON. */
        api: async (p, init) => {
          const r = await fetch(base + p, init);
          const text = await r.text();
          try {
            return JSON.parse(text);
          } catch {
            throw new Fail(`${p}: ${r.status} ${text.slice(0, 200)}`);
          }
        },
        /** Saves a screenshot when SEXTANT_SCREENSHOTS is set. */
        screenshot: async (name) => {
          if (!shotsDir) return;
          await page.screenshot({ path: path.join(shotsDir, `${name}.png`), fullPage: false });
        },
        /** Polls `fn` until it returns a truthy value or `ms` pass. */
        until: async (what, fn, ms = 15000) => {
          const end = Date.now() + ms;
          let last;
          for (;;) {
            try {
              last = await fn();
              if (last) return last;
            } catch (e) {
              last = e;
            }
            if (Date.now() > end) throw new Fail(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
            await new Promise((r) => setTimeout(r, 100));
          }
        },
        errors,
      };
      const t0 = Date.now();
      try {
        await s.run(ctx);
        if (errors.length) throw new Fail(errors.join("\n  "));
        console.log(`ok ${s.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${s.name} [${s.file}]: ${e instanceof Fail ? e.message : e.stack ?? e}`);
        if (shotsDir) await page.screenshot({ path: path.join(shotsDir, `FAIL-${s.name.replace(/\W+/g, "_")}.png`) }).catch(() => {});
      } finally {
        await page.close();
      }
    }
  } finally {
    await browser.close();
    await rm(userDir, { recursive: true, force: true });
  }
  console.log(`${selected.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL runner: ${e.stack ?? e}`);
  process.exit(2);
});
