// The dashboard list (#/dashboards): search by title or tag, source badges, new and import links,
// delete for dashboards stored in the database.
import { useEffect, useState } from "preact/hooks";
import type { DashboardSummary } from "../dashboard/model";
import { deleteDashboard, listDashboards } from "../dashboard/api";
import "../dashboard/dashboard.css";

export function DashboardsPage({ params }: { params: URLSearchParams }) {
  const [list, setList] = useState<DashboardSummary[] | null>(null);
  const [error, setError] = useState("");
  const [q, setQ] = useState(params.get("q") ?? "");
  const [tag, setTag] = useState(params.get("tag") ?? "");
  const load = () => listDashboards().then(setList, (e) => setError(e instanceof Error ? e.message : String(e)));
  useEffect(() => { load(); }, []);

  const terms = q.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = (list ?? [])
    .filter((d) => !tag || (d.tags ?? []).includes(tag))
    .filter((d) => terms.every((t) => d.title.toLowerCase().includes(t) || d.uid.toLowerCase().includes(t) || (d.tags ?? []).some((x) => x.toLowerCase().includes(t))))
    .sort((a, b) => a.title.localeCompare(b.title));
  const allTags = [...new Set((list ?? []).flatMap((d) => d.tags ?? []))].sort();

  const remove = async (d: DashboardSummary) => {
    if (!confirm(`Delete dashboard “${d.title}”? ${d.source === "db" ? "" : "It will reappear from its file."}`)) return;
    try {
      await deleteDashboard(d.uid);
      load();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  return (
    <section class="page dash-list">
      <div class="list-head">
        <h1>Dashboards</h1>
        <div class="list-actions">
          <a class="button primary" href="#/dashboards/new">New dashboard</a>
          <a class="button" href="#/import">Import</a>
        </div>
      </div>
      <div class="list-filters">
        <input class="search" placeholder="Search by title or tag" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} autoFocus />
        <select value={tag} onChange={(e) => setTag((e.target as HTMLSelectElement).value)}>
          <option value="">All tags</option>
          {allTags.map((t) => <option value={t}>{t}</option>)}
        </select>
      </div>
      {error && <div class="panel-error">{error}</div>}
      {list === null && !error && <p class="muted">Loading…</p>}
      {list !== null && (
        <table class="data dash-table">
          <thead><tr><th>Title</th><th>Tags</th><th>Source</th><th>Version</th><th>Updated</th><th /></tr></thead>
          <tbody>
            {shown.map((d) => (
              <tr data-uid={d.uid}>
                <td><a href={`#/d/${encodeURIComponent(d.uid)}`}>{d.title}</a></td>
                <td>{(d.tags ?? []).map((t) => <button class="tag" onClick={() => setTag(t)}>{t}</button>)}</td>
                <td><span class={`badge badge-${d.source}`} title={d.path}>{d.source}</span></td>
                <td class="muted">{d.version ?? ""}</td>
                <td class="muted">{d.updated ? new Date(d.updated).toLocaleString() : ""}</td>
                <td>{d.source === "db" && <button class="link" onClick={() => remove(d)}>Delete</button>}</td>
              </tr>
            ))}
            {shown.length === 0 && <tr><td colSpan={6} class="muted">No dashboards match.</td></tr>}
          </tbody>
        </table>
      )}
    </section>
  );
}
