import { describe, expect, it } from "vitest";
import { formatShort, formatUnit, legendFormat, seriesName } from "./format";

describe("formatShort", () => {
  it("uses SI prefixes", () => {
    expect(formatShort(0)).toBe("0");
    expect(formatShort(1234)).toBe("1.234k");
    expect(formatShort(1_500_000)).toBe("1.5M");
    expect(formatShort(-2_000_000_000)).toBe("-2G");
    expect(formatShort(0.0042)).toBe("4.2m");
    expect(formatShort(42)).toBe("42");
    expect(formatShort(0.5)).toBe("0.5");
  });
  it("honours decimals", () => {
    expect(formatShort(1234, 1)).toBe("1.2k");
    expect(formatShort(3, 2)).toBe("3.00");
  });
});

describe("formatUnit", () => {
  it("formats bytes, seconds and percentages", () => {
    expect(formatUnit(1024, "bytes")).toBe("1 KiB");
    expect(formatUnit(1536 * 1024 * 1024, "bytes")).toBe("1.5 GiB");
    expect(formatUnit(1500, "decbytes")).toBe("1.5 kB");
    expect(formatUnit(0.25, "s")).toBe("250 ms");
    expect(formatUnit(90, "s")).toBe("1.5 min");
    expect(formatUnit(250, "ms")).toBe("250 ms");
    expect(formatUnit(0.873, "percentunit")).toBe("87.3%");
    expect(formatUnit(42, "percent")).toBe("42.0%");
    expect(formatUnit(12.5, "currencyUSD")).toBe("$12.50");
    expect(formatUnit(1200, "tokens")).toBe("1.2k tokens");
  });
  it("shows missing values as a dash", () => {
    expect(formatUnit(null)).toBe("-");
    expect(formatUnit(NaN, "bytes")).toBe("-");
  });
  it("keeps unknown units as a suffix", () => {
    expect(formatUnit(3, "widgets")).toBe("3 widgets");
  });
});

describe("series names", () => {
  it("prints Prometheus style", () => {
    expect(seriesName({ __name__: "up", job: "node", instance: "a:9100" })).toBe('up{instance="a:9100", job="node"}');
    expect(seriesName({ __name__: "up" })).toBe("up");
    expect(seriesName({})).toBe("{}");
  });
  it("expands legend templates", () => {
    expect(legendFormat("{{instance}} / {{ job }}", { instance: "a", job: "j" })).toBe("a / j");
    expect(legendFormat("{{missing}}x", {})).toBe("x");
  });
});
