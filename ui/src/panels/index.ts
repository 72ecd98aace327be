// Panel type → component.
import type { FunctionComponent } from "preact";
import type { PanelType } from "../dashboard/model";
import { Heatmap } from "./Heatmap";
import { TablePanel } from "./Table";
import { TextPanel } from "./Text";
import { TimeSeries } from "./TimeSeries";
import type { PanelProps } from "./types";
import { BarChart, BarGauge, Gauge, Pie, Stat } from "./Values";

export const PANELS: Partial<Record<PanelType, FunctionComponent<PanelProps>>> = {
  timeseries: TimeSeries,
  stat: Stat,
  gauge: Gauge,
  bargauge: BarGauge,
  barchart: BarChart,
  pie: Pie,
  heatmap: Heatmap,
  table: TablePanel,
  text: TextPanel,
};

export type { PanelData, PanelProps, Annotation, TargetData } from "./types";
