// The 24-column dashboard grid: rows split the flat panel list into sections, collapsed rows hide
// their panels, and panels settle upwards without overlapping (like Grafana's gridPos layout).
import type { Panel } from "./model";

export const COLUMNS = 24;
/** Height of one grid unit in pixels (Grafana's gridPos h unit). */
export const ROW_PX = 30;
export const GAP_PX = 8;

export interface Cell { index: number; x: number; y: number; w: number; h: number; row: boolean; hidden: boolean }

/** Index of the row a panel belongs to (-1 before the first row). */
export function rowOf(panels: Panel[], index: number): number {
  for (let i = index - 1; i >= 0; i--) if (panels[i].type === "row") return i;
  return -1;
}

function collides(a: { x: number; y: number; w: number; h: number }, b: { x: number; y: number; w: number; h: number }) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/**
 * Lays the panels out. Within a section, panels keep their grid order (y, then x), are pushed down
 * out of overlaps and then float up as far as they can. Panels without a grid are placed after the
 * others, two per line. Hidden cells (in collapsed rows) are returned with hidden = true.
 */
export function layout(panels: Panel[], priority?: number): Cell[] {
  const cells: Cell[] = [];
  let top = 0;
  let i = 0;
  while (i < panels.length) {
    let header: Cell | null = null;
    if (panels[i].type === "row") {
      header = { index: i, x: 0, y: top, w: COLUMNS, h: 1, row: true, hidden: false };
      cells.push(header);
      top += 1;
      i++;
    }
    const start = i;
    while (i < panels.length && panels[i].type !== "row") i++;
    const members = panels.slice(start, i).map((p, k) => ({ p, index: start + k }));
    const collapsed = header !== null && !!panels[header.index].collapsed;
    const minY = Math.min(...members.filter((m) => m.p.grid).map((m) => m.p.grid!.y), Infinity);
    let autoY = 0;
    let autoX = 0;
    const items = members.map(({ p, index }) => {
      const g = p.grid;
      const w = Math.min(COLUMNS, Math.max(1, Math.round(g?.w ?? 12)));
      const h = Math.max(1, Math.round(g?.h ?? 8));
      let x = Math.min(COLUMNS - w, Math.max(0, Math.round(g?.x ?? 0)));
      let y: number;
      if (g) y = Math.max(0, g.y - minY);
      else {
        if (autoX + w > COLUMNS) {
          autoX = 0;
          autoY += 8;
        }
        x = autoX;
        y = 10000 + autoY;
        autoX += w;
      }
      return { index, x, y, w, h };
    });
    items.sort((a, b) => (a.index === priority ? -1 : b.index === priority ? 1 : a.y - b.y || a.x - b.x));
    const placed: { x: number; y: number; w: number; h: number }[] = [];
    let bottom = 0;
    for (const it of items) {
      const c = { ...it };
      while (placed.some((p) => collides(p, c))) c.y++;
      while (c.y > 0 && !placed.some((p) => collides(p, { ...c, y: c.y - 1 }))) c.y--;
      placed.push(c);
      bottom = Math.max(bottom, c.y + c.h);
      cells.push({ index: it.index, x: c.x, y: top + c.y, w: c.w, h: c.h, row: false, hidden: collapsed });
    }
    if (!collapsed) top += bottom;
  }
  return cells;
}

/** Writes a layout back into the panels' grid fields (absolute y), as saved in the file. */
export function applyLayout(panels: Panel[], cells: Cell[]): Panel[] {
  const out = panels.map((p) => ({ ...p }));
  for (const c of cells) {
    if (c.hidden) continue;
    out[c.index].grid = { x: c.x, y: c.y, w: c.w, h: c.h };
  }
  return out;
}

/**
 * Moves/resizes one panel to the given grid position (absolute y, as laid out) and re-settles the
 * layout. Dropping a panel below another row's header moves it into that row. Returns the new
 * panel list (the moved panel may have a new index).
 */
export function movePanel(panels: Panel[], index: number, g: { x: number; y: number; w: number; h: number }): Panel[] {
  const w = Math.min(COLUMNS, Math.max(1, g.w));
  const baked = applyLayout(panels.map((p) => ({ ...p })), layout(panels));
  const cells = layout(baked);
  const target = { x: Math.min(COLUMNS - w, Math.max(0, g.x)), y: Math.max(0, g.y), w, h: Math.max(1, g.h) };
  // The section the drop lands in: the last open row header at or above the drop point.
  let destRow = -1;
  for (const c of cells) if (c.row && !c.hidden && !baked[c.index].collapsed && c.y <= target.y) destRow = c.index;
  let list = baked;
  let at = index;
  if (baked[index].type !== "row" && destRow !== rowOf(baked, index) && !(destRow === -1 && cells.some((c) => c.row && c.y <= target.y))) {
    const moved = baked[index];
    list = baked.filter((_, k) => k !== index);
    const rowIdx = destRow === -1 ? -1 : destRow > index ? destRow - 1 : destRow;
    let insert = rowIdx + 1;
    while (insert < list.length && list[insert].type !== "row") insert++;
    list.splice(insert, 0, moved);
    at = insert;
  }
  list[at] = { ...list[at], grid: target };
  return applyLayout(list, layout(list, at));
}

/** Total height of a layout in grid units. */
export function layoutHeight(cells: Cell[]): number {
  return cells.filter((c) => !c.hidden).reduce((m, c) => Math.max(m, c.y + c.h), 0);
}
