import { describe, expect, it } from "vitest";
import { autoStep, describeRange, formatDuration, isRelative, parseDuration, resolveRange, resolveTime } from "./time";

describe("parseDuration", () => {
  it("reads Prometheus durations", () => {
    expect(parseDuration("5m")).toBe(300);
    expect(parseDuration("1h30m")).toBe(5400);
    expect(parseDuration("250ms")).toBe(0.25);
    expect(parseDuration("2d")).toBe(172800);
    expect(parseDuration("1w")).toBe(604800);
    expect(parseDuration("1y")).toBe(31536000);
  });
  it("rejects garbage", () => {
    expect(parseDuration("")).toBeNull();
    expect(parseDuration("5")).toBeNull();
    expect(parseDuration("m5")).toBeNull();
    expect(parseDuration("5x")).toBeNull();
    expect(parseDuration("5m junk")).toBeNull();
  });
  it("round-trips through formatDuration", () => {
    for (const s of ["15s", "1m", "1h30m", "2d", "1w", "500ms"]) expect(formatDuration(parseDuration(s)!)).toBe(s);
  });
});

describe("resolveTime", () => {
  const now = 1_700_000_000;
  it("handles relative times", () => {
    expect(resolveTime("now", now)).toBe(now);
    expect(resolveTime("now-5m", now)).toBe(now - 300);
    expect(resolveTime("now - 1h", now)).toBe(now - 3600);
    expect(resolveTime("now+1d", now)).toBe(now + 86400);
    expect(resolveTime("now-30d", now)).toBe(now - 30 * 86400);
  });
  it("handles absolute times", () => {
    expect(resolveTime("1699990000", now)).toBe(1699990000);
    expect(resolveTime("1699990000.5", now)).toBe(1699990000.5);
    expect(resolveTime("1699990000000", now)).toBe(1699990000); // milliseconds
    expect(resolveTime("2023-11-14T22:13:20Z", now)).toBe(1700000000);
    expect(resolveTime("2023-11-14", now)).toBe(Date.parse("2023-11-14T00:00:00Z") / 1000);
  });
  it("rejects garbage", () => {
    expect(resolveTime("yesterday", now)).toBeNull();
    expect(resolveTime("now-", now)).toBeNull();
    expect(resolveTime("now-5q", now)).toBeNull();
  });
});

describe("resolveRange", () => {
  it("resolves both ends", () => {
    expect(resolveRange({ from: "now-1h", to: "now" }, 10000)).toEqual([6400, 10000]);
  });
  it("names the bad end", () => {
    expect(() => resolveRange({ from: "x", to: "now" }, 1)).toThrow(/"from"/);
    expect(() => resolveRange({ from: "now", to: "y" }, 1)).toThrow(/"to"/);
    expect(() => resolveRange({ from: "now", to: "now-1h" }, 10000)).toThrow(/before/);
  });
  it("knows relative ranges", () => {
    expect(isRelative({ from: "now-1h", to: "now" })).toBe(true);
    expect(isRelative({ from: "1", to: "2" })).toBe(false);
  });
  it("describes presets", () => {
    expect(describeRange({ from: "now-24h", to: "now" })).toBe("Last 24 hours");
    expect(describeRange({ from: "now-2h", to: "now-1h" })).toBe("now-2h to now-1h");
  });
});

describe("autoStep", () => {
  it("picks nice steps for about 250 points", () => {
    expect(autoStep(0, 3600)).toBe(15);
    expect(autoStep(0, 86400)).toBe(600);
    expect(autoStep(0, 300)).toBe(2);
    expect(autoStep(0, 60)).toBe(1);
    expect(autoStep(0, 3600, 250, 60)).toBe(60);
  });
});
