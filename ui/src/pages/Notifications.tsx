// Notifications: the built-in Alertmanager's notification log and each receiver's health
// (/api/sextant/notifications, /api/sextant/receivers). Older builds without these endpoints get
// a plain note instead of an error.
import { get } from "../api";
import { useApi } from "../components/useApi";
import { formatAgo } from "../format";
import { formatDateTime } from "../time";

type Row = Record<string, unknown>;

function str(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** Accepts RFC 3339 strings, unix seconds or milliseconds. */
function when(v: unknown): string {
  if (v === null || v === undefined || v === "") return "-";
  const n = typeof v === "number" ? (v > 1e11 ? v / 1000 : v) : Date.parse(String(v)) / 1000;
  return isNaN(n) ? str(v) : `${formatDateTime(n)} (${formatAgo(n)})`;
}

function pick(r: Row, ...keys: string[]): unknown {
  for (const k of keys) if (r[k] !== undefined) return r[k];
  return undefined;
}

function asList(d: unknown, key: string): Row[] {
  if (Array.isArray(d)) return d as Row[];
  if (d && typeof d === "object" && Array.isArray((d as Record<string, unknown>)[key])) return (d as Record<string, Row[]>)[key];
  return [];
}

function Unavailable({ what, status, error }: { what: string; status?: number; error?: string }) {
  return status === 404 ? (
    <div class="card empty">The {what} is not available in this build of Sextant.</div>
  ) : (
    <p class="error">Cannot load the {what}: {error}</p>
  );
}

export function Notifications() {
  const recv = useApi(() => get<unknown>("/api/sextant/receivers"), [], 30000);
  const log = useApi(() => get<unknown>("/api/sextant/notifications", { limit: "200" }), [], 30000);
  const receivers = asList(recv.data, "receivers");
  const entries = asList(log.data, "notifications");
  return (
    <section class="page notifications">
      <div class="toolbar">
        <h1 style={{ margin: 0 }}>Notifications</h1>
        <span class="spacer" />
        <button onClick={() => { recv.reload(); log.reload(); }}>↻</button>
      </div>
      <h2>Receivers</h2>
      {recv.error ? (
        <Unavailable what="receiver health" status={recv.status} error={recv.error} />
      ) : recv.data && receivers.length === 0 ? (
        <div class="card empty">No receivers configured.</div>
      ) : (
        <table class="data receivers">
          <thead><tr><th>Receiver</th><th>Integrations</th><th>Last attempt</th><th>Last success</th><th>Errors</th><th>Last error</th></tr></thead>
          <tbody>
            {receivers.map((r) => {
              const errs = Number(pick(r, "errors", "error_count", "errorCount", "failures") ?? 0);
              return (
                <tr>
                  <td><span class={`badge ${errs > 0 && pick(r, "last_error", "lastError") ? "err" : "ok"}`}>●</span> {str(pick(r, "name", "receiver"))}</td>
                  <td>{str(pick(r, "integrations", "integration"))}</td>
                  <td>{when(pick(r, "last_attempt", "lastAttempt"))}</td>
                  <td>{when(pick(r, "last_success", "lastSuccess"))}</td>
                  <td class="num">{errs}</td>
                  <td class="error">{str(pick(r, "last_error", "lastError"))}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <h2>Notification log</h2>
      {log.error ? (
        <Unavailable what="notification log" status={log.status} error={log.error} />
      ) : log.data && entries.length === 0 ? (
        <div class="card empty">No notifications sent yet.</div>
      ) : (
        <table class="data notification-log">
          <thead><tr><th>Time</th><th>Receiver</th><th>Integration</th><th>Group</th><th>Status</th><th>Alerts</th><th>Error</th></tr></thead>
          <tbody>
            {entries.map((r) => {
              const st = str(pick(r, "status"));
              return (
                <tr>
                  <td>{when(pick(r, "time", "timestamp"))}</td>
                  <td>{str(pick(r, "receiver"))}</td>
                  <td>{str(pick(r, "integration"))}</td>
                  <td class="mono">{str(pick(r, "group_key", "groupKey"))}</td>
                  <td><span class={`badge ${st === "ok" || st === "success" || st === "sent" ? "ok" : "err"}`}>{st}</span></td>
                  <td class="num">{str(pick(r, "alerts", "alert_count", "alertsCount"))}</td>
                  <td class="error">{str(pick(r, "error"))}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
