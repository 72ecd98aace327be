// Table panel: instant results (one row per series) or range results (one row per sample,
// or per series' last value for format=time_series), sortable by any column.
import { useEffect, useMemo, useState } from "preact/hooks";
import { seriesToTable } from "../dashboard/transform";
import { formatValue, overridesFor, thresholdColor } from "../dashboard/units";
import type { PanelProps } from "./types";

export function TablePanel({ panel, data, width, height, onDrawn }: PanelProps) {
  const [sort, setSort] = useState<{ col: number; desc: boolean } | null>(null);
  const perSample = (panel.targets ?? []).some((t) => t.format === "table" && !t.instant);
  const table = useMemo(
    () => seriesToTable(data.targets.map((t) => ({ ref: t.ref, series: t.series })), !perSample),
    [data, perSample],
  );
  const rows = useMemo(() => {
    if (!sort) return table.rows;
    const r = [...table.rows];
    r.sort((a, b) => {
      const x = a[sort.col], y = b[sort.col];
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x ?? "").localeCompare(String(y ?? ""), undefined, { numeric: true });
      return sort.desc ? -c : c;
    });
    return r;
  }, [table, sort]);
  useEffect(() => onDrawn(), [data, width, height]);
  if (!table.rows.length) return <div class="nodata">No data</div>;
  const nLabels = table.columns.length;
  const valueStart = table.columns.findIndex((c) => c.startsWith("Value"));
  return (
    <div class="table-wrap" style={{ maxHeight: `${height}px`, width: `${width}px` }}>
      <table class="data">
        <thead>
          <tr>
            {table.columns.map((c, i) => (
              <th onClick={() => setSort(sort?.col === i ? { col: i, desc: !sort.desc } : { col: i, desc: false })}>
                {overridesFor(c, panel.overrides).display_name ?? c}
                {sort?.col === i ? (sort.desc ? " ▼" : " ▲") : ""}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, 2000).map((r) => (
            <tr>
              {r.slice(0, nLabels).map((v, i) => {
                if (i === 0) return <td class="muted">{typeof v === "number" ? new Date(v * 1000).toLocaleString() : ""}</td>;
                if (i >= valueStart && typeof v === "number") {
                  const o = overridesFor(table.columns[i], panel.overrides);
                  const color = panel.thresholds?.length ? thresholdColor(v, panel.thresholds) : undefined;
                  return <td class="num" style={color ? { color } : undefined}>{formatValue(v, o.unit ?? panel.unit ?? "none", panel.decimals)}</td>;
                }
                return <td>{v ?? ""}</td>;
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
