// What every panel component receives: its model, the fetched data and its pixel size.
import type { QueryData } from "../api";
import type { Panel } from "../dashboard/model";
import type { Series } from "../dashboard/transform";

export interface TargetData { ref: string; data: QueryData; series: Series[] }

export interface PanelData {
  targets: TargetData[];
  /** All series of all targets, in target order. */
  series: Series[];
  start: number;
  end: number;
}

/** An alert state change drawn as a marker on time-series panels. */
export interface Annotation { time: number; kind: "start" | "end"; text: string }

export interface PanelProps {
  panel: Panel;
  data: PanelData;
  width: number;
  height: number;
  annotations?: Annotation[];
  /** Called after the panel has drawn its data (once per data update). */
  onDrawn: () => void;
  /** Called with [from, to] Unix seconds when the user drag-selects a time range. */
  onZoom?: (from: number, to: number) => void;
}
