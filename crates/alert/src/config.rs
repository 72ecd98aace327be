//! Alertmanager's configuration format (`global`, `route`, `receivers`, `inhibit_rules`,
//! `templates`, `time_intervals`, `mute_time_intervals`), parsed with line numbers and validated
//! the way Alertmanager validates it, so an `alertmanager.yml` can be used unchanged. The
//! route tree is resolved here: defaults are inherited down the tree and every route gets
//! Alertmanager's key (`{}/{severity="page"}`) used in group keys.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sextant_model::matcher::{MatchOp, Matcher};
use sextant_model::time::parse_duration;

use crate::matchers::{matchers_string, parse_matchers};
use crate::receivers::ReceiverConfig;
use crate::timeinterval::{TimeInterval, TimeIntervalSpec};

/// A configuration problem, with its place in the file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {msg}")]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub msg: String,
}

/// `global:` — defaults used by receivers, kept as plain data.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Time after which an alert without `endsAt` is declared resolved (default 5m).
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: String,
    #[serde(default)]
    pub http_config: Option<serde_json::Value>,
    #[serde(default)]
    pub smtp_from: Option<String>,
    #[serde(default)]
    pub smtp_hello: Option<String>,
    #[serde(default)]
    pub smtp_smarthost: Option<String>,
    #[serde(default)]
    pub smtp_auth_username: Option<String>,
    #[serde(default)]
    pub smtp_auth_password: Option<String>,
    #[serde(default)]
    pub smtp_auth_password_file: Option<String>,
    #[serde(default)]
    pub smtp_auth_secret: Option<String>,
    #[serde(default)]
    pub smtp_auth_identity: Option<String>,
    #[serde(default)]
    pub smtp_require_tls: Option<bool>,
    #[serde(default)]
    pub smtp_tls_config: Option<serde_json::Value>,
    #[serde(default)]
    pub slack_api_url: Option<String>,
    #[serde(default)]
    pub slack_api_url_file: Option<String>,
    #[serde(default)]
    pub telegram_api_url: Option<String>,
    #[serde(default)]
    pub webex_api_url: Option<String>,
    #[serde(default)]
    pub pagerduty_url: Option<String>,
    #[serde(default)]
    pub opsgenie_api_url: Option<String>,
    #[serde(default)]
    pub opsgenie_api_key: Option<String>,
    #[serde(default)]
    pub opsgenie_api_key_file: Option<String>,
    #[serde(default)]
    pub wechat_api_url: Option<String>,
    #[serde(default)]
    pub wechat_api_secret: Option<String>,
    #[serde(default)]
    pub wechat_api_corp_id: Option<String>,
    #[serde(default)]
    pub victorops_api_url: Option<String>,
    #[serde(default)]
    pub victorops_api_key: Option<String>,
    #[serde(default)]
    pub victorops_api_key_file: Option<String>,
}

fn default_resolve_timeout() -> String {
    "5m".to_string()
}

impl Default for GlobalConfig {
    fn default() -> Self {
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: Option<GlobalConfig>,
    #[serde(default)]
    route: Option<Spanned<RawRoute>>,
    #[serde(default)]
    receivers: Vec<Spanned<ReceiverConfig>>,
    #[serde(default)]
    inhibit_rules: Vec<Spanned<RawInhibit>>,
    #[serde(default)]
    templates: Vec<String>,
    #[serde(default)]
    time_intervals: Vec<Spanned<RawNamedInterval>>,
    #[serde(default)]
    mute_time_intervals: Vec<Spanned<RawNamedInterval>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamedInterval {
    name: String,
    #[serde(default)]
    time_intervals: Vec<TimeIntervalSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    receiver: Option<String>,
    #[serde(default)]
    group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    continue_: bool,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default, rename = "match")]
    match_: BTreeMap<String, String>,
    #[serde(default)]
    match_re: BTreeMap<String, String>,
    #[serde(default)]
    group_wait: Option<String>,
    #[serde(default)]
    group_interval: Option<String>,
    #[serde(default)]
    repeat_interval: Option<String>,
    #[serde(default)]
    mute_time_intervals: Vec<String>,
    #[serde(default)]
    active_time_intervals: Vec<String>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibit {
    #[serde(default)]
    source_matchers: Vec<String>,
    #[serde(default)]
    target_matchers: Vec<String>,
    #[serde(default)]
    source_match: BTreeMap<String, String>,
    #[serde(default)]
    source_match_re: BTreeMap<String, String>,
    #[serde(default)]
    target_match: BTreeMap<String, String>,
    #[serde(default)]
    target_match_re: BTreeMap<String, String>,
    #[serde(default)]
    equal: Vec<String>,
}

/// One node of the resolved routing tree.
#[derive(Clone, Debug)]
pub struct Route {
    pub receiver: String,
    /// Labels to group by; ignored when `group_by_all` (`group_by: ['...']`).
    pub group_by: Vec<String>,
    pub group_by_all: bool,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
    /// Alertmanager's route key (`{}/{a="b"}`), the prefix of group keys.
    pub key: String,
    /// Unique id (the key plus sibling positions).
    pub id: String,
}

/// One inhibition rule.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// A parsed and validated Alertmanager configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub global: GlobalConfig,
    pub resolve_timeout: Duration,
    pub route: Route,
    pub receivers: Vec<ReceiverConfig>,
    pub inhibit_rules: Vec<InhibitRule>,
    /// Template file globs, as written.
    pub templates: Vec<String>,
    /// `time_intervals` and `mute_time_intervals`, by name.
    pub time_intervals: HashMap<String, Vec<TimeInterval>>,
    /// The YAML text as given (`/api/v2/status` shows it).
    pub original: String,
}

impl Config {
    /// The built-in default: everything to a receiver named `default` with no integrations.
    pub fn default_config() -> Config {
        let text = "route:\n  receiver: default\nreceivers:\n  - name: default\n";
        match parse_config(text, "<default>") {
            Ok(c) => c,
            Err(_) => unreachable!("the default configuration is valid"),
        }
    }

    /// Every route, depth first (the root first).
    pub fn routes(&self) -> Vec<&Route> {
        fn walk<'a>(r: &'a Route, out: &mut Vec<&'a Route>) {
            out.push(r);
            for c in &r.routes {
                walk(c, out);
            }
        }
        let mut v = Vec::new();
        walk(&self.route, &mut v);
        v
    }
}

/// Reads and parses a configuration file.
pub fn load_config(path: &std::path::Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        msg: format!("cannot read: {e}"),
    })?;
    parse_config(&text, &file)
}

fn legacy_matchers(
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for (k, v) in eq {
        out.push(Matcher::equal(k.clone(), v.clone()));
    }
    for (k, v) in re {
        out.push(Matcher::new(MatchOp::Regex, k.clone(), v.clone()).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn new_matchers(list: &[String]) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for s in list {
        out.extend(parse_matchers(s).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

struct Inherited {
    receiver: String,
    group_by: Vec<String>,
    group_by_all: bool,
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
}

/// Parses an Alertmanager configuration from YAML text; `file` names it in errors.
pub fn parse_config(text: &str, file: &str) -> Result<Config, ConfigError> {
    let err_at = |line: u64, column: u64, msg: String| ConfigError {
        file: file.to_string(),
        line,
        column,
        msg,
    };
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let s = e.to_string();
        err_at(
            line,
            column,
            s.lines().next().unwrap_or("invalid YAML").to_string(),
        )
    })?;
    let global = raw.global.unwrap_or_default();
    let resolve_timeout = parse_duration(&global.resolve_timeout)
        .map_err(|e| err_at(0, 0, format!("global.resolve_timeout: {e}")))?;

    // Receivers: names unique and non-empty.
    let mut names = HashSet::new();
    for r in &raw.receivers {
        let (l, c) = (r.referenced.line(), r.referenced.column());
        if r.value.name.is_empty() {
            return Err(err_at(l, c, "missing name in receiver".into()));
        }
        if !names.insert(r.value.name.clone()) {
            return Err(err_at(
                l,
                c,
                format!("notification config name {:?} is not unique", r.value.name),
            ));
        }
    }

    // Time intervals.
    let mut time_intervals = HashMap::new();
    for ti in raw
        .time_intervals
        .iter()
        .chain(raw.mute_time_intervals.iter())
    {
        let (l, c) = (ti.referenced.line(), ti.referenced.column());
        if ti.value.name.is_empty() {
            return Err(err_at(l, c, "missing name in time interval".into()));
        }
        let mut v = Vec::new();
        for spec in &ti.value.time_intervals {
            v.push(
                spec.build()
                    .map_err(|e| err_at(l, c, format!("time interval {:?}: {e}", ti.value.name)))?,
            );
        }
        if time_intervals.insert(ti.value.name.clone(), v).is_some() {
            return Err(err_at(
                l,
                c,
                format!("time interval {:?} is not unique", ti.value.name),
            ));
        }
    }

    // Route tree.
    let root = raw
        .route
        .ok_or_else(|| err_at(0, 0, "no route provided in config".into()))?;
    let (rl, rc) = (root.referenced.line(), root.referenced.column());
    let r = &root.value;
    if r.receiver.as_deref().unwrap_or("").is_empty() {
        return Err(err_at(
            rl,
            rc,
            "root route must specify a default receiver".into(),
        ));
    }
    if !r.matchers.is_empty() || !r.match_.is_empty() || !r.match_re.is_empty() {
        return Err(err_at(
            rl,
            rc,
            "root route must not have any matchers".into(),
        ));
    }
    if r.continue_ {
        return Err(err_at(rl, rc, "cannot have continue in root route".into()));
    }
    if !r.mute_time_intervals.is_empty() {
        return Err(err_at(
            rl,
            rc,
            "root route must not have any mute time intervals".into(),
        ));
    }
    if !r.active_time_intervals.is_empty() {
        return Err(err_at(
            rl,
            rc,
            "root route must not have any active time intervals".into(),
        ));
    }
    let base = Inherited {
        receiver: String::new(),
        group_by: Vec::new(),
        group_by_all: false,
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(4 * 3600),
    };
    let ctx = BuildCtx {
        receivers: &names,
        intervals: &time_intervals,
        file,
    };
    let route = build_route(&root, &base, None, &ctx)?;

    // Inhibition rules.
    let mut inhibit_rules = Vec::new();
    for ir in &raw.inhibit_rules {
        let (l, c) = (ir.referenced.line(), ir.referenced.column());
        let v = &ir.value;
        let mut src = legacy_matchers(&v.source_match, &v.source_match_re)
            .map_err(|e| err_at(l, c, format!("inhibit rule: {e}")))?;
        src.extend(new_matchers(&v.source_matchers).map_err(|e| err_at(l, c, e))?);
        let mut tgt = legacy_matchers(&v.target_match, &v.target_match_re)
            .map_err(|e| err_at(l, c, format!("inhibit rule: {e}")))?;
        tgt.extend(new_matchers(&v.target_matchers).map_err(|e| err_at(l, c, e))?);
        inhibit_rules.push(InhibitRule {
            source_matchers: src,
            target_matchers: tgt,
            equal: v.equal.clone(),
        });
    }

    Ok(Config {
        global,
        resolve_timeout,
        route,
        receivers: raw.receivers.into_iter().map(|r| r.value).collect(),
        inhibit_rules,
        templates: raw.templates,
        time_intervals,
        original: text.to_string(),
    })
}

struct BuildCtx<'a> {
    receivers: &'a HashSet<String>,
    intervals: &'a HashMap<String, Vec<TimeInterval>>,
    file: &'a str,
}

fn build_route(
    raw: &Spanned<RawRoute>,
    parent: &Inherited,
    parent_ids: Option<(&str, &str, usize)>,
    ctx: &BuildCtx,
) -> Result<Route, ConfigError> {
    let (l, c) = (raw.referenced.line(), raw.referenced.column());
    let err = |msg: String| ConfigError {
        file: ctx.file.to_string(),
        line: l,
        column: c,
        msg,
    };
    let r = &raw.value;
    let dur = |v: &Option<String>, what: &str, d: Duration| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(d),
            Some(s) => parse_duration(s).map_err(|e| err(format!("{what}: {e}"))),
        }
    };
    let receiver = r
        .receiver
        .clone()
        .unwrap_or_else(|| parent.receiver.clone());
    if !ctx.receivers.contains(&receiver) {
        return Err(err(format!(
            "undefined receiver {receiver:?} used in route"
        )));
    }
    let (group_by, group_by_all) = match &r.group_by {
        None => (parent.group_by.clone(), parent.group_by_all),
        Some(g) => {
            let all = g.iter().any(|x| x == "...");
            if all && g.len() > 1 {
                return Err(err(
                    "cannot have wildcard group_by (`...`) and other labels at the same time"
                        .into(),
                ));
            }
            let mut seen = HashSet::new();
            for x in g {
                if !all && !sextant_model::labels::is_valid_label_name(x) {
                    return Err(err(format!("invalid label name {x:?} in group_by list")));
                }
                if !seen.insert(x) {
                    return Err(err(format!("duplicated label {x:?} in group_by")));
                }
            }
            let mut v = if all { Vec::new() } else { g.clone() };
            v.sort();
            (v, all)
        }
    };
    let group_wait = dur(&r.group_wait, "group_wait", parent.group_wait)?;
    let group_interval = dur(&r.group_interval, "group_interval", parent.group_interval)?;
    let repeat_interval = dur(
        &r.repeat_interval,
        "repeat_interval",
        parent.repeat_interval,
    )?;
    if group_interval.is_zero() {
        return Err(err("group_interval cannot be zero".into()));
    }
    if repeat_interval.is_zero() {
        return Err(err("repeat_interval cannot be zero".into()));
    }
    for n in r
        .mute_time_intervals
        .iter()
        .chain(r.active_time_intervals.iter())
    {
        if !ctx.intervals.contains_key(n) {
            return Err(err(format!("undefined time interval {n:?} used in route")));
        }
    }
    let mut matchers = legacy_matchers(&r.match_, &r.match_re).map_err(err)?;
    for (k, _) in r.match_.iter().chain(r.match_re.iter()) {
        if !sextant_model::labels::is_valid_label_name(k) {
            return Err(err(format!("invalid label name {k:?}")));
        }
    }
    matchers.extend(new_matchers(&r.matchers).map_err(err)?);
    matchers.sort_by(|a, b| {
        (a.name.as_str(), a.value.as_str(), a.op.as_str()).cmp(&(
            b.name.as_str(),
            b.value.as_str(),
            b.op.as_str(),
        ))
    });
    let ms = matchers_string(&matchers);
    let (key, id) = match parent_ids {
        None => (ms.clone(), ms),
        Some((pk, pid, idx)) => (format!("{pk}/{ms}"), format!("{pid}/{ms}/{idx}")),
    };
    let inherited = Inherited {
        receiver: receiver.clone(),
        group_by: group_by.clone(),
        group_by_all,
        group_wait,
        group_interval,
        repeat_interval,
    };
    let mut routes = Vec::new();
    for (i, child) in r.routes.iter().enumerate() {
        routes.push(build_route(child, &inherited, Some((&key, &id, i)), ctx)?);
    }
    Ok(Route {
        receiver,
        group_by,
        group_by_all,
        matchers,
        continue_: r.continue_,
        group_wait,
        group_interval,
        repeat_interval,
        mute_time_intervals: r.mute_time_intervals.clone(),
        active_time_intervals: r.active_time_intervals.clone(),
        routes,
        key,
        id,
    })
}

impl Route {
    /// Alertmanager's `Match`: the routes an alert goes to (deepest matching, honouring
    /// `continue`). The root always matches.
    pub fn match_labels<'a>(&'a self, ls: &BTreeMap<String, String>) -> Vec<&'a Route> {
        if !crate::matchers::matches_labels(&self.matchers, ls) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for c in &self.routes {
            let m = c.match_labels(ls);
            let matched = !m.is_empty();
            all.extend(m);
            if matched && !c.continue_ {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The group labels of an alert on this route.
    pub fn group_labels(&self, ls: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        if self.group_by_all {
            return ls.clone();
        }
        self.group_by
            .iter()
            .filter_map(|k| ls.get(k).map(|v| (k.clone(), v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // The routing tree of Alertmanager's dispatch/route_test.go (TestRouteMatch).
    const TREE: &str = r#"
receivers:
- name: 'notify-def'
- name: 'notify-A'
- name: 'notify-B'
- name: 'notify-BC'
- name: 'notify-productionA'
- name: 'notify-productionB'
- name: 'notify-testing'
- name: 'notify-critical'
route:
  group_by: ['alertname']
  group_wait: 10s
  group_interval: 10s
  receiver: 'notify-def'
  routes:
  - match:
      owner: 'team-A'
    receiver: 'notify-A'
    routes:
    - match:
        env: 'testing'
      receiver: 'notify-testing'
      group_by: ['...']
    - match:
        env: "production"
      receiver: 'notify-productionA'
      group_wait: 1m
      continue: true
    - match_re:
        env: "produ.*"
        job: ".*"
      receiver: 'notify-productionB'
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 1h
      group_by: ['job']
  - match_re:
      owner: 'team-(B|C)'
    group_by: ['foo', 'bar']
    group_wait: 2m
    receiver: 'notify-BC'
  - match:
      group_by: 'role'
    group_by: ['role']
    routes:
    - match:
        env: 'testing'
      receiver: 'notify-testing'
      routes:
      - match:
          wait: 'long'
        group_wait: 2m
"#;

    fn receivers(c: &Config, l: &[(&str, &str)]) -> Vec<String> {
        c.route
            .match_labels(&ls(l))
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    #[test]
    fn alertmanager_route_match_cases() {
        let c = parse_config(TREE, "t.yml").unwrap();
        assert_eq!(receivers(&c, &[("owner", "team-A")]), ["notify-A"]);
        assert_eq!(
            receivers(&c, &[("owner", "team-A"), ("env", "unset")]),
            ["notify-A"]
        );
        assert_eq!(receivers(&c, &[("owner", "team-C")]), ["notify-BC"]);
        assert_eq!(
            receivers(&c, &[("owner", "team-A"), ("env", "testing")]),
            ["notify-testing"]
        );
        assert_eq!(
            receivers(&c, &[("owner", "team-A"), ("env", "production")]),
            ["notify-productionA", "notify-productionB"]
        );
        assert_eq!(receivers(&c, &[("group_by", "role")]), ["notify-def"]);
        assert_eq!(
            receivers(&c, &[("group_by", "role"), ("env", "testing")]),
            ["notify-testing"]
        );
        let r = c.route.match_labels(&ls(&[
            ("group_by", "role"),
            ("env", "testing"),
            ("wait", "long"),
        ]));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].receiver, "notify-testing");
        assert_eq!(r[0].group_wait, Duration::from_secs(120));
        assert_eq!(r[0].group_by, ["role"]);
        assert_eq!(r[0].group_interval, Duration::from_secs(10));
        assert_eq!(r[0].repeat_interval, Duration::from_secs(4 * 3600));
        // Inherited and overridden options.
        let r = c
            .route
            .match_labels(&ls(&[("owner", "team-A"), ("env", "production")]));
        assert_eq!(r[0].group_wait, Duration::from_secs(60));
        assert_eq!(r[0].group_by, ["alertname"]);
        assert_eq!(r[1].group_by, ["job"]);
        assert_eq!(r[1].repeat_interval, Duration::from_secs(3600));
        let t = c
            .route
            .match_labels(&ls(&[("owner", "team-A"), ("env", "testing")]));
        assert!(t[0].group_by_all);
        // Route keys as in Alertmanager.
        assert_eq!(c.route.key, "{}");
        assert_eq!(r[0].key, r#"{}/{owner="team-A"}/{env="production"}"#);
        assert_eq!(
            r[1].key,
            r#"{}/{owner="team-A"}/{env=~"produ.*",job=~".*"}"#
        );
    }

    #[test]
    fn new_matcher_syntax_and_intervals() {
        let c = parse_config(
            r#"
route:
  receiver: a
  routes:
    - receiver: b
      matchers: ['severity=~"crit|page"', 'team!="x"']
      mute_time_intervals: [nights]
receivers: [{name: a}, {name: b}]
time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: '00:00', end_time: '06:00'}]}]
inhibit_rules:
  - source_matchers: ['severity="crit"']
    target_matchers: ['severity="warn"']
    equal: [alertname]
templates: ['/etc/am/*.tmpl']
"#,
            "t.yml",
        )
        .unwrap();
        assert_eq!(receivers(&c, &[("severity", "page")]), ["b"]);
        assert_eq!(receivers(&c, &[("severity", "page"), ("team", "x")]), ["a"]);
        assert_eq!(
            c.route.routes[0].key,
            r#"{}/{severity=~"crit|page",team!="x"}"#
        );
        assert_eq!(c.inhibit_rules.len(), 1);
        assert_eq!(c.templates, ["/etc/am/*.tmpl"]);
        assert_eq!(c.time_intervals["nights"].len(), 1);
        assert_eq!(c.resolve_timeout, Duration::from_secs(300));
    }

    #[test]
    fn validation_errors_like_alertmanager() {
        let cases = [
            ("route: {receiver: x}\nreceivers: [{name: a}]\n", "undefined receiver \"x\""),
            ("route: {}\nreceivers: [{name: a}]\n", "root route must specify a default receiver"),
            (
                "route: {receiver: a, matchers: ['a=b']}\nreceivers: [{name: a}]\n",
                "root route must not have any matchers",
            ),
            ("route: {receiver: a}\nreceivers: [{name: a}, {name: a}]\n", "not unique"),
            (
                "route:\n  receiver: a\n  routes:\n    - mute_time_intervals: [x]\nreceivers: [{name: a}]\n",
                "undefined time interval \"x\"",
            ),
            (
                "route: {receiver: a, group_by: ['...', 'x']}\nreceivers: [{name: a}]\n",
                "wildcard",
            ),
            ("route: {receiver: a, group_interval: 0}\nreceivers: [{name: a}]\n", "zero"),
            ("route: {receiver: a, group_wait: 5x}\nreceivers: [{name: a}]\n", "group_wait"),
            ("route: {receiver: a}\nreceivers: [{name: a}]\nbogus: 1\n", "bogus"),
            (
                "route:\n  receiver: a\n  routes:\n    - matchers: ['a=~\"(\"']\nreceivers: [{name: a}]\n",
                "bad matcher",
            ),
        ];
        for (y, want) in cases {
            let e = parse_config(y, "am.yml").unwrap_err().to_string();
            assert!(e.contains(want), "{y}: {e}");
            assert!(e.starts_with("am.yml:"), "{e}");
        }
        // Line numbers point at the offending entry.
        let e = parse_config(
            "route:\n  receiver: a\n  routes:\n    - receiver: a\n    - receiver: nope\nreceivers: [{name: a}]\n",
            "am.yml",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn default_config_is_valid() {
        let c = Config::default_config();
        assert_eq!(c.route.receiver, "default");
        assert_eq!(c.receivers.len(), 1);
    }
}

#[cfg(test)]
mod example_tests {
    /// The shipped example (also checked by `amtool check-config` in the e2e tests).
    #[test]
    fn example_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/alertmanager.yml");
        let c = super::load_config(std::path::Path::new(path)).unwrap();
        assert_eq!(c.receivers.len(), 3);
        assert_eq!(c.route.routes.len(), 2);
        assert!(c.route.routes[0].continue_);
        assert_eq!(c.time_intervals.len(), 2);
    }
}
