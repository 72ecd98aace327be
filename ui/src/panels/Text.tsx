// Text panel: Markdown rendered by the dashboard's own safe renderer (HTML in the source is escaped).
import { useEffect, useMemo } from "preact/hooks";
import { renderMarkdown } from "../dashboard/markdown";
import type { PanelProps } from "./types";

export function TextPanel({ panel, onDrawn, height }: PanelProps) {
  const html = useMemo(() => renderMarkdown(panel.text ?? ""), [panel.text]);
  useEffect(() => onDrawn(), [html]);
  return <div class="markdown" style={{ maxHeight: `${height}px` }} dangerouslySetInnerHTML={{ __html: html }} />;
}
