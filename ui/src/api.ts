// Thin client for the Prometheus-compatible HTTP API and Sextant's own /api/sextant endpoints.
// Every call resolves to the `data` member or throws an ApiError carrying Prometheus' errorType.

export class ApiError extends Error {
  constructor(public errorType: string, message: string, public status: number) {
    super(message);
  }
}

export interface QueryStats {
  timings?: Record<string, number>;
  samples?: { totalQueryableSamples?: number; peakSamples?: number };
}

export interface ApiResponse<T> {
  status: "success" | "error";
  data: T;
  errorType?: string;
  error?: string;
  warnings?: string[];
  infos?: string[];
  stats?: QueryStats;
}

export type Labels = Record<string, string>;
export type SamplePair = [number, string];
export interface MatrixSeries { metric: Labels; values?: SamplePair[]; histograms?: [number, unknown][] }
export interface VectorSample { metric: Labels; value?: SamplePair; histogram?: [number, unknown] }
export type QueryData =
  | { resultType: "matrix"; result: MatrixSeries[] }
  | { resultType: "vector"; result: VectorSample[] }
  | { resultType: "scalar"; result: SamplePair }
  | { resultType: "string"; result: SamplePair };

/**
 * With `auth:` configured, a 401 means the login session ended (or never began): go to the
 * server's login page, which comes back to the current view afterwards.
 */
function loginIfUnauthorized(res: Response): void {
  if (res.status === 401) {
    window.location.assign("/login?next=" + encodeURIComponent("/" + window.location.hash));
  }
}

/** Sends a request and returns the whole Prometheus-style envelope (data, warnings, stats). */
export async function call<T>(path: string, params?: Record<string, string>, init?: RequestInit): Promise<ApiResponse<T>> {
  let url = path;
  let req = init;
  if (params) {
    const body = new URLSearchParams(params);
    if (!init || init.method === undefined || init.method === "GET") {
      url += (url.includes("?") ? "&" : "?") + body.toString();
    } else {
      req = { ...init, body, headers: { "Content-Type": "application/x-www-form-urlencoded", ...(init.headers ?? {}) } };
    }
  }
  const res = await fetch(url, req);
  loginIfUnauthorized(res);
  const text = await res.text();
  let json: ApiResponse<T>;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError("bad_response", `${res.status} ${res.statusText}: ${text.slice(0, 200)}`, res.status);
  }
  if (!res.ok || json.status === "error") {
    throw new ApiError(json.errorType ?? "error", json.error ?? `${res.status} ${res.statusText}`, res.status);
  }
  return json;
}

export async function get<T>(path: string, params?: Record<string, string>): Promise<T> {
  return (await call<T>(path, params)).data;
}

export function queryInstant(expr: string, time?: number, extra: Record<string, string> = {}) {
  const p: Record<string, string> = { query: expr, ...extra };
  if (time !== undefined) p.time = String(time);
  return call<QueryData>("/api/v1/query", p, { method: "POST" });
}

export function queryRange(expr: string, start: number, end: number, step: number, extra: Record<string, string> = {}) {
  return call<QueryData>(
    "/api/v1/query_range",
    { query: expr, start: String(start), end: String(end), step: String(step), ...extra },
    { method: "POST" },
  );
}

export const labelNames = () => get<string[]>("/api/v1/labels");
export const labelValues = (name: string, match?: string) =>
  get<string[]>(`/api/v1/label/${encodeURIComponent(name)}/values`, match ? { "match[]": match } : undefined);

/**
 * Alertmanager v2 and plain JSON endpoints answer without the Prometheus envelope; errors are a
 * JSON string or text. Resolves to the parsed body or throws an ApiError.
 */
export async function rawJson<T>(path: string, init?: RequestInit & { json?: unknown }): Promise<T> {
  const req: RequestInit = { ...init };
  if (init?.json !== undefined) {
    req.body = JSON.stringify(init.json);
    req.headers = { "Content-Type": "application/json", ...(init.headers ?? {}) };
  }
  const res = await fetch(path, req);
  loginIfUnauthorized(res);
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!res.ok) {
    const msg =
      typeof body === "string" ? body : body && typeof body === "object" && "error" in body ? String((body as { error: unknown }).error) : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status === 404 ? "not_found" : "error", msg || `${res.status} ${res.statusText}`, res.status);
  }
  return body as T;
}

export interface AmMatcher { name: string; value: string; isRegex: boolean; isEqual?: boolean }
export interface Silence {
  id: string;
  status: { state: "active" | "pending" | "expired" };
  matchers: AmMatcher[];
  startsAt: string;
  endsAt: string;
  updatedAt?: string;
  createdBy: string;
  comment: string;
}
export type PostableSilence = Omit<Silence, "id" | "status" | "updatedAt"> & { id?: string };

export const listSilences = () => rawJson<Silence[]>("/api/v2/silences");
export const getSilence = (id: string) => rawJson<Silence>(`/api/v2/silence/${encodeURIComponent(id)}`);
export const postSilence = (s: PostableSilence) => rawJson<{ silenceID: string }>("/api/v2/silences", { method: "POST", json: s });
export const expireSilence = (id: string) => rawJson<null>(`/api/v2/silence/${encodeURIComponent(id)}`, { method: "DELETE" });
