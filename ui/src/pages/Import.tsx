// Grafana import (#/import): paste or upload dashboard JSON, preview the conversion with a
// per-panel report of what could not be converted, then save and open the result.
import { useState } from "preact/hooks";
import { importGrafana } from "../dashboard/api";
import type { ImportResult } from "../dashboard/model";
import "../dashboard/dashboard.css";

export function ImportPage() {
  const [text, setText] = useState("");
  const [results, setResults] = useState<ImportResult[] | null>(null);
  const [saved, setSaved] = useState(false);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const run = async (save: boolean) => {
    setError("");
    setBusy(true);
    try {
      const r = await importGrafana(text, save);
      setResults(r);
      setSaved(save);
      if (save && r.length === 1 && r[0].saved_uid) location.hash = `#/d/${encodeURIComponent(r[0].saved_uid)}`;
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const upload = async (e: Event) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (!f) return;
    setText(await f.text());
    setResults(null);
  };

  return (
    <section class="page import-page">
      <h1>Import a Grafana dashboard</h1>
      <p class="muted">
        Paste Grafana dashboard JSON (a classic dashboard, the <code>{"{dashboard: …}"}</code> API wrapper, or several in an
        array) or upload a file. Panels, rows, variables, units, thresholds and overrides are converted; anything that
        cannot be is listed per panel.
      </p>
      <div class="import-input">
        <input type="file" accept=".json,application/json" onChange={upload} />
        <textarea rows={14} placeholder='{"title": "…", "panels": […]}' value={text} onInput={(e) => { setText((e.target as HTMLTextAreaElement).value); setResults(null); }} />
      </div>
      <div class="import-actions">
        <button disabled={!text.trim() || busy} onClick={() => run(false)}>Preview</button>
        <button class="primary" disabled={!text.trim() || busy} onClick={() => run(true)}>Import and save</button>
      </div>
      {error && <div class="panel-error">{error}</div>}
      {results && results.map((r) => {
        const problems = r.report.filter((p) => p.problems.length);
        return (
          <div class="import-result">
            <h3>
              {r.dashboard.title} <span class="muted small">({r.dashboard.panels.length} panels, uid {r.dashboard.uid ?? "–"})</span>
              {r.saved_uid && <a class="button primary" href={`#/d/${encodeURIComponent(r.saved_uid)}`}>Open</a>}
            </h3>
            {saved && !r.saved_uid && <div class="panel-error">Not saved.</div>}
            {problems.length === 0 ? (
              <p class="ok">Everything converted.</p>
            ) : (
              <table class="data">
                <thead><tr><th>Panel</th><th>Type</th><th>Problems</th></tr></thead>
                <tbody>
                  {problems.map((p) => (
                    <tr><td>{p.title || `#${p.panel_id ?? ""}`}</td><td>{p.type}</td><td><ul>{p.problems.map((x) => <li>{x}</li>)}</ul></td></tr>
                  ))}
                </tbody>
              </table>
            )}
            <details><summary>Converted panels</summary>
              <ul>{r.dashboard.panels.map((p) => <li>{p.type}: {p.title}</li>)}</ul>
            </details>
          </div>
        );
      })}
    </section>
  );
}
