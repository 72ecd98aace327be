// The PromQL editor: CodeMirror 6 with Prometheus' own PromQL language package for highlighting
// and autocompletion of metric names, label names, label values and functions, fed by our
// /api/v1 endpoints. Shift+Enter or Ctrl/Cmd+Enter runs the query; a parse error reported by the
// server ("1:7: …") is marked at its position.
import { useEffect, useRef } from "preact/hooks";
import { EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap, placeholder as placeholderExt, drawSelection, highlightActiveLine } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, insertNewlineAndIndent } from "@codemirror/commands";
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { syntaxHighlighting, HighlightStyle, bracketMatching } from "@codemirror/language";
import { Diagnostic, setDiagnostics, lintGutter } from "@codemirror/lint";
import { tags } from "@lezer/highlight";
import { PromQLExtension } from "@prometheus-io/codemirror-promql";

/** A position in the query, 1-based, as in our parse errors ("1:7: unexpected …"). */
export interface ErrorPos {
  line: number;
  col: number;
  message: string;
}

/** Extracts "line:col" from an error message like "1:7: parse error: …" or "parse error at line 1, char 7". */
export function errorPosition(message: string): ErrorPos | null {
  let m = /(?:^|\D)(\d+):(\d+):\s*(.*)$/s.exec(message);
  if (m) return { line: +m[1], col: +m[2], message: m[3] || message };
  m = /line (\d+), char(?:acter)? (\d+)/.exec(message);
  if (m) return { line: +m[1], col: +m[2], message };
  return null;
}

const highlight = HighlightStyle.define([
  { tag: tags.keyword, color: "#cc99cd" },
  { tag: tags.function(tags.variableName), color: "#ffb86c" },
  { tag: tags.labelName, color: "#8be9fd" },
  { tag: tags.string, color: "#a5d6a7" },
  { tag: tags.number, color: "#f1fa8c" },
  { tag: tags.operator, color: "#ff79c6" },
  { tag: tags.comment, color: "#6a737d", fontStyle: "italic" },
  { tag: tags.invalid, color: "#ff5555" },
]);

const theme = EditorView.theme(
  {
    "&": { backgroundColor: "#111217", color: "#d8d9da", border: "1px solid #2c3235", borderRadius: "3px", fontSize: "13px" },
    "&.cm-focused": { outline: "1px solid #3d71d9" },
    ".cm-content": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, monospace", caretColor: "#fff", padding: "6px 0" },
    ".cm-line": { padding: "0 8px" },
    ".cm-activeLine": { backgroundColor: "transparent" },
    ".cm-tooltip": { backgroundColor: "#22252b", border: "1px solid #3a3f45", color: "#d8d9da" },
    ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "#3d71d9", color: "#fff" },
    ".cm-completionDetail": { color: "#9fa7b3" },
    ".cm-placeholder": { color: "#6e7580" },
    ".cm-gutters": { backgroundColor: "#111217", border: "none" },
  },
  { dark: true },
);

/** Answers the completion client's /status/flags probe locally (we have no flags endpoint). */
const fetchFn = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (url.includes("/api/v1/status/flags")) {
    return Promise.resolve(new Response(JSON.stringify({ status: "success", data: {} }), { headers: { "Content-Type": "application/json" } }));
  }
  return fetch(input, init);
};

export interface QueryEditorProps {
  value: string;
  onChange: (v: string) => void;
  /** Shift+Enter / Ctrl+Enter. */
  onRun: () => void;
  /** Error to mark in the text (from the server's parse error). */
  error?: ErrorPos | null;
  placeholder?: string;
  autofocus?: boolean;
}

export function QueryEditor(props: QueryEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  // Callbacks change every render; the editor reads the latest through refs.
  const cb = useRef(props);
  cb.current = props;

  useEffect(() => {
    const promql = new PromQLExtension()
      .activateLinter(false)
      .setComplete({ remote: { url: "", fetchFn, httpMethod: "GET", cache: { maxAge: 5 * 60 * 1000 }, httpErrorHandler: () => {} } });
    const run = () => {
      cb.current.onRun();
      return true;
    };
    const state = EditorState.create({
      doc: props.value,
      extensions: [
        history(),
        drawSelection(),
        highlightActiveLine(),
        bracketMatching(),
        closeBrackets(),
        autocompletion(),
        lintGutter(),
        syntaxHighlighting(highlight),
        theme,
        placeholderExt(props.placeholder ?? "Enter a PromQL query (Shift+Enter to run)"),
        EditorView.lineWrapping,
        Prec.highest(
          keymap.of([
            { key: "Shift-Enter", run },
            { key: "Mod-Enter", run },
            { key: "Enter", run: insertNewlineAndIndent },
          ]),
        ),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
        promql.asExtension(),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) {
            cb.current.onChange(u.state.doc.toString());
            if (cb.current.error) u.view.dispatch(setDiagnostics(u.state, []));
          }
        }),
      ],
    });
    const v = new EditorView({ state, parent: host.current! });
    view.current = v;
    if (props.autofocus) v.focus();
    return () => {
      v.destroy();
      view.current = null;
    };
  }, []);

  // Outside changes (URL, history) replace the text.
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== props.value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: props.value } });
    }
  }, [props.value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const diags: Diagnostic[] = [];
    const e = props.error;
    if (e) {
      const doc = v.state.doc;
      const ln = Math.min(Math.max(e.line, 1), doc.lines);
      const line = doc.line(ln);
      const from = Math.min(line.from + Math.max(e.col - 1, 0), line.to);
      diags.push({ from, to: Math.min(from + 1, doc.length), severity: "error", message: e.message });
    }
    v.dispatch(setDiagnostics(v.state, diags));
  }, [props.error]);

  return <div class="query-editor" ref={host} data-testid="query-editor" />;
}
