// A small data-loading hook for the list pages: loads on mount and on `deps` change, optionally
// every `refreshMs`, and keeps the last good data while reloading.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";

export interface ApiState<T> {
  data?: T;
  error?: string;
  /** HTTP status of the last failure (404 = endpoint not available in this build). */
  status?: number;
  loading: boolean;
  reload: () => void;
}

export function useApi<T>(load: () => Promise<T>, deps: unknown[] = [], refreshMs = 0): ApiState<T> {
  const [state, setState] = useState<Omit<ApiState<T>, "reload">>({ loading: true });
  const gen = useRef(0);
  const reload = () => {
    const id = ++gen.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => id === gen.current && setState({ data, loading: false }),
      (e) =>
        id === gen.current &&
        setState((s) => ({ data: s.data, loading: false, error: e instanceof ApiError ? e.message : String(e), status: e instanceof ApiError ? e.status : undefined })),
    );
  };
  useEffect(() => {
    reload();
    if (!refreshMs) return;
    const t = setInterval(reload, refreshMs);
    return () => clearInterval(t);
  }, deps);
  return { ...state, reload };
}

export function Labels({ labels, skip = [] }: { labels: Record<string, string>; skip?: string[] }) {
  return (
    <span class="labels">
      {Object.keys(labels)
        .filter((k) => !skip.includes(k))
        .sort()
        .map((k) => (
          <span class="label-chip" title={`${k}="${labels[k]}"`}>
            {k}="{labels[k]}"
          </span>
        ))}
    </span>
  );
}
