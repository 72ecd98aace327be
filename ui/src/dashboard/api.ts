// Client for /api/sextant/dashboards (see the contract in docs/dashboards.md).
import { ApiError, call, get } from "../api";
import type { Dashboard, DashboardMeta, DashboardSummary, ImportResult, VersionInfo } from "./model";

const BASE = "/api/sextant/dashboards";

async function json<T>(path: string, method: string, body: unknown): Promise<T> {
  return (await call<T>(path, undefined, {
    method,
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  })).data;
}

export const listDashboards = () => get<DashboardSummary[]>(BASE);
export const getDashboard = (uid: string) =>
  get<{ dashboard: Dashboard; meta: DashboardMeta }>(`${BASE}/${encodeURIComponent(uid)}`);
export const createDashboard = (dashboard: Dashboard, message = "") =>
  json<{ uid: string; version: number }>(BASE, "POST", { dashboard, message });
export const saveDashboard = (uid: string, dashboard: Dashboard, version: number, message = "") =>
  json<{ uid: string; version: number }>(`${BASE}/${encodeURIComponent(uid)}`, "PUT", { dashboard, message, version });
export const deleteDashboard = (uid: string) =>
  call<unknown>(`${BASE}/${encodeURIComponent(uid)}`, undefined, { method: "DELETE" });
export const listVersions = (uid: string) => get<VersionInfo[]>(`${BASE}/${encodeURIComponent(uid)}/versions`);
export const getVersion = (uid: string, n: number) =>
  get<Dashboard | { dashboard: Dashboard }>(`${BASE}/${encodeURIComponent(uid)}/versions/${n}`).then((d) =>
    "panels" in d ? d : (d as { dashboard: Dashboard }).dashboard,
  );
export const exportUrl = (uid: string, format: "yaml" | "json") =>
  `${BASE}/${encodeURIComponent(uid)}/export?format=${format}`;

/** Posts Grafana JSON text to the importer; `save` also stores the converted dashboards. */
export async function importGrafana(text: string, save: boolean): Promise<ImportResult[]> {
  const res = await fetch(`${BASE}/import${save ? "?save=true" : ""}`, {
    method: "POST",
    body: text,
    headers: { "Content-Type": "application/json" },
  });
  const body = await res.text();
  let parsed: { status: string; data?: ImportResult[]; error?: string; errorType?: string };
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new ApiError("bad_response", `${res.status}: ${body.slice(0, 200)}`, res.status);
  }
  if (!res.ok || parsed.status !== "success") {
    throw new ApiError(parsed.errorType ?? "error", parsed.error ?? `${res.status}`, res.status);
  }
  return parsed.data ?? [];
}

export { ApiError };
