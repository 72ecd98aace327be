// Silences: the built-in Alertmanager's silences (/api/v2/silences) — list with state filter,
// create (also prefilled from an alert: #/silences/new?matcher=name="value"…), edit (#/silences/edit/ID)
// and expire.
import { useEffect, useState } from "preact/hooks";
import { AmMatcher, Silence, expireSilence, getSilence, listSilences, postSilence } from "../api";
import { useApi } from "../components/useApi";
import { formatAgo } from "../format";
import { href } from "../router";
import { formatDateTime, formatDuration, parseDuration } from "../time";

/** Parses 'name="value"', 'name=~"re"', 'name!=v', 'name!~"re"' into an Alertmanager matcher. */
export function parseMatcher(s: string): AmMatcher | null {
  const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/.exec(s);
  if (!m) return null;
  let v = m[3];
  if (v.startsWith('"')) {
    try {
      v = JSON.parse(v);
    } catch {
      return null;
    }
  }
  return { name: m[1], value: v, isRegex: m[2].includes("~"), isEqual: !m[2].startsWith("!") };
}

export function matcherText(m: AmMatcher): string {
  const op = m.isEqual === false ? (m.isRegex ? "!~" : "!=") : m.isRegex ? "=~" : "=";
  return `${m.name}${op}${JSON.stringify(m.value)}`;
}

function toIso(sec: number): string {
  return new Date(sec * 1000).toISOString();
}

export function Silences({ rest, params }: { rest: string[]; params: URLSearchParams }) {
  if (rest[0] === "new") return <SilenceForm initial={params.getAll("matcher").map(parseMatcher).filter((m): m is AmMatcher => m !== null)} />;
  if (rest[0] === "edit" && rest[1]) return <EditSilence id={rest[1]} />;
  return <SilenceList />;
}

function EditSilence({ id }: { id: string }) {
  const res = useApi(() => getSilence(id), [id]);
  if (res.error) return <section class="page"><p class="error">Cannot load silence {id}: {res.error}</p></section>;
  if (!res.data) return <section class="page"><p class="muted">Loading…</p></section>;
  return <SilenceForm initial={res.data.matchers} existing={res.data} />;
}

function SilenceList() {
  const [state, setState] = useState<"active" | "pending" | "expired">("active");
  const [err, setErr] = useState("");
  const res = useApi(listSilences, [], 30000);
  const all = res.data ?? [];
  const shown = all.filter((s) => s.status.state === state).sort((a, b) => b.startsAt.localeCompare(a.startsAt));
  const expire = async (id: string) => {
    try {
      await expireSilence(id);
      setErr("");
      res.reload();
    } catch (e) {
      setErr(`Cannot expire silence: ${(e as Error).message}`);
    }
  };
  return (
    <section class="page silences">
      <div class="toolbar">
        <h1 style={{ margin: 0 }}>Silences</h1>
        <span class="spacer" />
        <a href={href("silences", ["new"])}><button class="primary" data-testid="new-silence">New silence</button></a>
        <button onClick={res.reload}>↻</button>
      </div>
      <div class="tabs">
        {(["active", "pending", "expired"] as const).map((s) => (
          <button class={state === s ? "active" : ""} data-state={s} onClick={() => setState(s)}>
            {s[0].toUpperCase() + s.slice(1)} ({all.filter((x) => x.status.state === s).length})
          </button>
        ))}
      </div>
      {res.error && <p class="error">Cannot load silences: {res.error}</p>}
      {err && <p class="error">{err}</p>}
      {res.data && shown.length === 0 && <div class="card empty">No {state} silences.</div>}
      {shown.length > 0 && (
        <table class="data silence-table">
          <thead>
            <tr><th>Matchers</th><th>Starts</th><th>Ends</th><th>Created by</th><th>Comment</th><th /></tr>
          </thead>
          <tbody>
            {shown.map((s) => (
              <tr data-silence-id={s.id}>
                <td>{s.matchers.map((m) => <span class="label-chip mono">{matcherText(m)}</span>)}</td>
                <td title={s.startsAt}>{formatDateTime(Date.parse(s.startsAt) / 1000)}</td>
                <td title={s.endsAt}>{formatDateTime(Date.parse(s.endsAt) / 1000)} <span class="muted">({formatAgo(Date.parse(s.endsAt) / 1000)})</span></td>
                <td>{s.createdBy}</td>
                <td>{s.comment}</td>
                <td style={{ whiteSpace: "nowrap" }}>
                  <a href={href("silences", ["edit", s.id])}><button>{s.status.state === "expired" ? "Recreate" : "Edit"}</button></a>{" "}
                  {s.status.state !== "expired" && <button class="danger" data-action="expire" onClick={() => expire(s.id)}>Expire</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function SilenceForm({ initial, existing }: { initial: AmMatcher[]; existing?: Silence }) {
  const now = Date.now() / 1000;
  const expired = existing?.status.state === "expired";
  const [matchers, setMatchers] = useState<string[]>(initial.length ? initial.map(matcherText) : [""]);
  const [startsAt, setStartsAt] = useState(existing && !expired ? existing.startsAt : toIso(Math.floor(now)));
  const [endsAt, setEndsAt] = useState(existing && !expired ? existing.endsAt : toIso(Math.floor(now) + 7200));
  const [duration, setDuration] = useState("2h");
  const [createdBy, setCreatedBy] = useState(existing?.createdBy ?? localStorage.getItem("sextant.silence.author") ?? "");
  const [comment, setComment] = useState(existing?.comment ?? "");
  const [err, setErr] = useState("");
  const [saving, setSaving] = useState(false);

  // Keep the duration field in step with start/end.
  useEffect(() => {
    const s = Date.parse(startsAt), e = Date.parse(endsAt);
    if (!isNaN(s) && !isNaN(e) && e > s) setDuration(formatDuration((e - s) / 1000));
  }, [startsAt, endsAt]);

  const onDuration = (d: string) => {
    setDuration(d);
    const sec = parseDuration(d);
    const s = Date.parse(startsAt);
    if (sec && !isNaN(s)) setEndsAt(toIso(s / 1000 + sec));
  };

  const save = async (e: Event) => {
    e.preventDefault();
    const parsed: AmMatcher[] = [];
    for (const [i, m] of matchers.entries()) {
      if (m.trim() === "") continue;
      const p = parseMatcher(m);
      if (!p) return setErr(`Matcher ${i + 1} is not name="value", name=~"regex", name!="value" or name!~"regex": ${m}`);
      parsed.push(p);
    }
    if (parsed.length === 0) return setErr("A silence needs at least one matcher.");
    if (isNaN(Date.parse(startsAt))) return setErr(`Start is not a valid time: ${startsAt}`);
    if (isNaN(Date.parse(endsAt))) return setErr(`End is not a valid time: ${endsAt}`);
    if (!createdBy.trim()) return setErr("Please enter who creates the silence.");
    if (!comment.trim()) return setErr("Please enter a comment.");
    setSaving(true);
    try {
      localStorage.setItem("sextant.silence.author", createdBy);
      await postSilence({
        id: existing && !expired ? existing.id : undefined,
        matchers: parsed,
        startsAt: new Date(startsAt).toISOString(),
        endsAt: new Date(endsAt).toISOString(),
        createdBy,
        comment,
      });
      location.hash = href("silences");
    } catch (e) {
      setErr((e as Error).message);
      setSaving(false);
    }
  };

  return (
    <section class="page silence-form">
      <h1>{existing && !expired ? "Edit silence" : "New silence"}</h1>
      <form class="card form-grid" onSubmit={save}>
        <label>Matchers</label>
        <div>
          {matchers.map((m, i) => (
            <div class="row-flex" style={{ marginBottom: "4px" }}>
              <input class="mono matcher" name={`matcher${i}`} size={40} placeholder='alertname="HighLoad"' value={m} onInput={(e) => setMatchers(matchers.map((x, k) => (k === i ? (e.target as HTMLInputElement).value : x)))} />
              <button type="button" title="Remove" onClick={() => setMatchers(matchers.length > 1 ? matchers.filter((_, k) => k !== i) : [""])}>✕</button>
            </div>
          ))}
          <button type="button" onClick={() => setMatchers([...matchers, ""])}>+ Matcher</button>
        </div>
        <label>Starts at</label>
        <input name="startsAt" value={startsAt} onInput={(e) => setStartsAt((e.target as HTMLInputElement).value)} />
        <label>Duration</label>
        <input name="duration" value={duration} size={10} onInput={(e) => onDuration((e.target as HTMLInputElement).value)} />
        <label>Ends at</label>
        <input name="endsAt" value={endsAt} onInput={(e) => setEndsAt((e.target as HTMLInputElement).value)} />
        <label>Created by</label>
        <input name="createdBy" value={createdBy} onInput={(e) => setCreatedBy((e.target as HTMLInputElement).value)} />
        <label>Comment</label>
        <textarea name="comment" value={comment} onInput={(e) => setComment((e.target as HTMLTextAreaElement).value)} />
        <span />
        <div class="row-flex">
          <button class="primary" type="submit" disabled={saving} data-testid="save-silence">{saving ? "Saving…" : existing && !expired ? "Update silence" : "Create silence"}</button>
          <a href={href("silences")}><button type="button">Cancel</button></a>
        </div>
        {err && <><span /><p class="error">{err}</p></>}
      </form>
    </section>
  );
}
