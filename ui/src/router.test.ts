import { describe, expect, it } from "vitest";
import { href, parseHash } from "./router";
import { errorPosition } from "./components/QueryEditor";
import { matchesFilter, silenceLink } from "./pages/Alerts";
import { matcherText, parseMatcher } from "./pages/Silences";

describe("router", () => {
  it("parses hash routes", () => {
    const r = parseHash("#/explore?expr=up&from=now-1h");
    expect(r.page).toBe("explore");
    expect(r.rest).toEqual([]);
    expect(r.params.get("expr")).toBe("up");
    expect(r.params.get("from")).toBe("now-1h");
  });
  it("parses nested paths and empty hashes", () => {
    expect(parseHash("#/silences/edit/abc%2Fdef").rest).toEqual(["edit", "abc/def"]);
    expect(parseHash("").page).toBe("");
    expect(parseHash("#").page).toBe("");
  });
  it("builds links that parse back", () => {
    const h = href("explore", [], { expr: 'rate(x{a="b"}[5m])', from: "now-6h" });
    const r = parseHash(h);
    expect(r.page).toBe("explore");
    expect(r.params.get("expr")).toBe('rate(x{a="b"}[5m])');
    expect(href("d", ["my dash"])).toBe("#/d/my%20dash");
  });
  it("keeps repeated parameters", () => {
    const p = new URLSearchParams();
    p.append("expr", "a");
    p.append("expr", "b");
    expect(parseHash(href("explore", [], p)).params.getAll("expr")).toEqual(["a", "b"]);
  });
});

describe("query errors", () => {
  it("finds line and column", () => {
    expect(errorPosition("invalid parameter \"query\": 1:7: parse error: unexpected end")).toEqual({ line: 1, col: 7, message: "parse error: unexpected end" });
    expect(errorPosition("2:3: parse error: x")?.line).toBe(2);
    expect(errorPosition("parse error at line 1, char 4: bad")?.col).toBe(4);
    expect(errorPosition("no position here")).toBeNull();
  });
});

describe("matchers", () => {
  it("parses and prints silence matchers", () => {
    expect(parseMatcher('alertname="X"')).toEqual({ name: "alertname", value: "X", isRegex: false, isEqual: true });
    expect(parseMatcher('instance=~"web-.*"')).toEqual({ name: "instance", value: "web-.*", isRegex: true, isEqual: true });
    expect(parseMatcher("job!=node")).toEqual({ name: "job", value: "node", isRegex: false, isEqual: false });
    expect(parseMatcher("=x")).toBeNull();
    for (const s of ['a="1"', 'b!="2"', 'c=~"x.*"', 'd!~"y"', 'e="with \\"quote\\""']) expect(matcherText(parseMatcher(s)!)).toBe(s);
  });
  it("filters alerts by labels and text", () => {
    const l = { alertname: "HighLoad", severity: "critical", instance: "web-1" };
    expect(matchesFilter(l, "")).toBe(true);
    expect(matchesFilter(l, 'alertname="HighLoad"')).toBe(true);
    expect(matchesFilter(l, 'severity=~"crit.*"')).toBe(true);
    expect(matchesFilter(l, 'severity!="critical"')).toBe(false);
    expect(matchesFilter(l, "web")).toBe(true);
    expect(matchesFilter(l, "nomatch")).toBe(false);
  });
  it("links alerts to a prefilled silence", () => {
    const r = parseHash(silenceLink({ alertname: "A", job: 'x"y' }));
    expect(r.rest).toEqual(["new"]);
    expect(r.params.getAll("matcher")).toEqual(['alertname="A"', 'job="x\\"y"']);
  });
});
