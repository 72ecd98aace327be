// Hash-based routing: the server serves one index.html for every UI path, and hash routes keep
// deep links working without server rewrites. A route is "#/<page>/<rest>?<query>".
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** First path segment, e.g. "explore", "d", "alerts". */
  page: string;
  /** Remaining path segments, decoded. */
  rest: string[];
  /** Query parameters after "?" in the hash. */
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, "");
  const [path, query = ""] = h.split("?", 2);
  const parts = path.split("/").filter((p) => p !== "").map(decodeURIComponent);
  return { page: parts[0] ?? "", rest: parts.slice(1), params: new URLSearchParams(query) };
}

export function href(page: string, rest: string[] = [], params?: Record<string, string> | URLSearchParams): string {
  const path = [page, ...rest].map(encodeURIComponent).join("/");
  const q = params ? new URLSearchParams(params).toString() : "";
  return `#/${path}${q ? "?" + q : ""}`;
}

/** Replaces the query part of the current route without adding a history entry. */
export function replaceParams(params: Record<string, string> | URLSearchParams): void {
  const r = parseHash(location.hash);
  history.replaceState(null, "", href(r.page, r.rest, params));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}
