//! Who may call what. Sextant holds teams' metrics and alerting state on one port, so every
//! route is classified in one table ([`ROUTE_SCOPES`]: route template + method → `open`,
//! `read`, `write` or `admin`) and one axum middleware ([`enforce`]) checks the caller's
//! credentials against it: bearer tokens (also Influx's `Token` scheme and `u`/`p` query
//! parameters), basic auth users (bcrypt hashes as in Prometheus' web-config) and UI session
//! cookies from the login page. Credentials are stored hashed; state-changing calls made with
//! the cookie must come from the same origin (CSRF); CORS answers only allow-listed origins.
//! Without an `auth:` section everything is open (loopback by default, see the binary).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;

/// What a credential may do. `admin` implies `read` and `write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Queries, UI, series/labels/metadata, dashboards read.
    Read,
    /// Ingest only: remote_write, OTLP, push, Influx, import, JUnit, agent events, alerts.
    Write,
    /// Rules reload, silences, dashboard writes, deletes, snapshots.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health checks, the login page).
    Open,
    Scope(Scope),
}

use Access::Open;
const READ: Access = Access::Scope(Scope::Read);
const WRITE: Access = Access::Scope(Scope::Write);
const ADMIN: Access = Access::Scope(Scope::Admin);

/// Every route of the router: (template as registered, methods, access). HEAD is checked as
/// GET. A route missing here is refused to everyone but admins (and the router test fails).
pub const ROUTE_SCOPES: &[(&str, &[&str], Access)] = &[
    ("/-/healthy", &["GET"], Open),
    ("/-/ready", &["GET"], Open),
    ("/login", &["GET", "POST"], Open),
    ("/logout", &["GET", "POST"], Open),
    // Influx clients ping before writing, without credentials (as InfluxDB allows).
    ("/ping", &["GET"], Open),
    ("/-/reload", &["POST", "PUT"], ADMIN),
    ("/api/v1/rules", &["GET"], READ),
    ("/api/v1/alerts", &["GET"], READ),
    ("/api/v2/alerts", &["GET"], READ),
    // Prometheus servers send their alerts here: ingest.
    ("/api/v2/alerts", &["POST"], WRITE),
    ("/api/v2/alerts/groups", &["GET"], READ),
    ("/api/v2/silences", &["GET"], READ),
    ("/api/v2/silences", &["POST"], ADMIN),
    ("/api/v2/silence/{id}", &["GET"], READ),
    ("/api/v2/silence/{id}", &["DELETE"], ADMIN),
    ("/api/v2/status", &["GET"], READ),
    ("/api/v2/receivers", &["GET"], READ),
    ("/api/sextant/dashboards", &["GET"], READ),
    ("/api/sextant/dashboards", &["POST"], ADMIN),
    ("/api/sextant/dashboards/import", &["POST"], ADMIN),
    ("/api/sextant/dashboards/{uid}", &["GET"], READ),
    ("/api/sextant/dashboards/{uid}", &["PUT", "DELETE"], ADMIN),
    ("/api/sextant/dashboards/{uid}/versions", &["GET"], READ),
    ("/api/sextant/dashboards/{uid}/versions/{n}", &["GET"], READ),
    ("/api/sextant/dashboards/{uid}/export", &["GET"], READ),
    ("/api/sextant/notifications", &["GET"], READ),
    ("/api/sextant/receivers", &["GET"], READ),
    ("/api/sextant/prices", &["GET"], READ),
    ("/api/sextant/probes", &["GET"], READ),
    ("/api/v1/junit", &["POST"], WRITE),
    ("/api/sextant/tests/flaky", &["GET"], READ),
    ("/api/sextant/tests/slowest", &["GET"], READ),
    ("/api/sextant/tests/failures", &["GET"], READ),
    ("/api/v1/write", &["POST"], WRITE),
    ("/api/v1/import/prometheus", &["POST"], WRITE),
    ("/api/v1/import", &["POST"], WRITE),
    ("/api/v1/import/csv", &["POST"], WRITE),
    ("/write", &["POST"], WRITE),
    ("/api/v2/write", &["POST"], WRITE),
    ("/v1/metrics", &["POST"], WRITE),
    ("/api/v1/agent/events", &["POST"], WRITE),
    ("/api/v1/agent/events/schema", &["GET"], READ),
    ("/api/v1/query", &["GET", "POST"], READ),
    ("/api/v1/query_range", &["GET", "POST"], READ),
    ("/api/v1/format_query", &["GET", "POST"], READ),
    ("/api/v1/parse_query", &["GET", "POST"], READ),
    ("/api/v1/query_exemplars", &["GET", "POST"], READ),
    ("/api/v1/series", &["GET", "POST"], READ),
    ("/api/v1/labels", &["GET", "POST"], READ),
    ("/api/v1/label/{name}/values", &["GET"], READ),
    ("/api/v1/metadata", &["GET"], READ),
    ("/api/v1/targets", &["GET"], READ),
    ("/api/v1/targets/metadata", &["GET"], READ),
    ("/api/v1/status/tsdb", &["GET"], READ),
    ("/api/v1/status/buildinfo", &["GET"], READ),
    ("/api/v1/status/runtimeinfo", &["GET"], READ),
    ("/api/v1/export", &["GET", "POST"], READ),
    // Prometheus' remote_read: a query of raw samples.
    ("/api/v1/read", &["POST"], READ),
    ("/api/v1/admin/tsdb/snapshot", &["POST", "PUT"], ADMIN),
    ("/api/v1/admin/tsdb/delete_series", &["POST", "PUT"], ADMIN),
    (
        "/api/v1/admin/tsdb/clean_tombstones",
        &["POST", "PUT"],
        ADMIN,
    ),
    // Pushgateway clients push and delete their own groups: ingest.
    ("/metrics/job/{*rest}", &["PUT", "POST", "DELETE"], WRITE),
    (
        "/metrics/job@base64/{*rest}",
        &["PUT", "POST", "DELETE"],
        WRITE,
    ),
    ("/api/v1/metrics", &["GET"], READ),
    ("/api/v1/status", &["GET"], READ),
    ("/api/v1/push/metrics", &["GET"], READ),
    ("/api/v1/{*rest}", &["GET", "POST"], READ),
    ("/metrics", &["GET"], READ),
    // The web UI.
    ("/", &["GET"], READ),
    ("/index.html", &["GET"], READ),
    ("/assets/{*path}", &["GET"], READ),
];

/// The access a route needs; `None` when the table has no entry (refused unless admin).
pub fn required(template: &str, method: &Method) -> Option<Access> {
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTE_SCOPES
        .iter()
        .find(|(t, ms, _)| *t == template && ms.contains(&m))
        .map(|(_, _, a)| *a)
        .or_else(|| {
            // Top-level files of the built UI (favicon …) are registered one route each.
            (m == "GET" && crate::ui::is_top_level_file(template)).then_some(READ)
        })
}

/// One bearer token of `auth.tokens`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs, never the token).
    pub name: String,
    /// `sha256:<64 hex digits>` of the token (`sextant auth hash-token`).
    pub hash: String,
    pub scopes: Vec<Scope>,
}

/// One basic auth / login page user of `auth.users`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// bcrypt hash (`$2y$…`, as `htpasswd -nBC 10` or `sextant auth hash-password` print).
    pub password_hash: String,
    pub scopes: Vec<Scope>,
}

/// `cors:`: which other origins may call the API from a browser.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://grafana.example.com`), or `*` for any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// `auth:` in sextant.yml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Prometheus web-config's `basic_auth_users` (user → bcrypt hash); these users get every
    /// scope, as in Prometheus.
    #[serde(default)]
    pub basic_auth_users: std::collections::BTreeMap<String, String>,
    /// Lifetime of a login session (Prometheus duration syntax is not needed: seconds).
    #[serde(default = "default_session_seconds")]
    pub session_max_age_seconds: u64,
}

fn default_session_seconds() -> u64 {
    12 * 3600
}

/// An `auth:` section that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("tokens[{0}].hash: {1}")]
    TokenHash(usize, String),
    #[error("tokens[{0}].scopes: at least one scope is needed")]
    TokenScopes(usize),
    #[error("users[{0}].password_hash: {1}")]
    UserHash(usize, String),
    #[error("users[{0}].name: {1}")]
    UserName(usize, String),
    #[error("basic_auth_users.{0}: {1}")]
    BasicHash(String, String),
    #[error("no tokens, users or basic_auth_users: nobody could log in")]
    Empty,
}

#[derive(Clone, Debug)]
struct Principal {
    name: String,
    scopes: Vec<Scope>,
}

impl Principal {
    fn allows(&self, s: Scope) -> bool {
        self.scopes.contains(&s) || self.scopes.contains(&Scope::Admin)
    }
}

struct Session {
    who: Principal,
    expires: Instant,
}

/// Checked credentials, the session store and the CORS allow-list.
pub struct Auth {
    /// sha256 digest of the token → holder.
    tokens: HashMap<[u8; 32], Principal>,
    /// user → (bcrypt hash, principal).
    users: HashMap<String, (String, Principal)>,
    /// Digests of user+password pairs already verified (bcrypt is slow by design).
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    /// sha256 of the session id → session.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    session_max_age: Duration,
    /// Whether auth is configured at all (else only CORS applies).
    enabled: bool,
    /// The server speaks TLS: cookies get `Secure`.
    tls: bool,
    /// Scopes whose routes need a verified TLS client certificate.
    cert_scopes: Vec<Scope>,
    cors: CorsConfig,
    /// Consecutive failed password attempts per user name, and until when it is locked.
    failed: Mutex<HashMap<String, (u32, Instant)>>,
    /// Refused credentials by reason (see [`FAILURE_REASONS`]).
    failures: [std::sync::atomic::AtomicU64; 4],
}

/// Reasons counted in `sextant_auth_failures_total{reason}`.
pub const FAILURE_REASONS: [&str; 4] = ["bad_token", "bad_password", "locked_out", "bad_session"];

/// Failed password attempts for one user name before it is locked out; each further failure
/// doubles the lock (1 s, 2 s, 4 s, … up to [`MAX_LOCKOUT`]). A correct password already
/// verified shortly before keeps working (see `verified`), so a locked-out attacker does not
/// lock out the user's running clients.
const FREE_FAILURES: u32 = 5;
const MAX_LOCKOUT: Duration = Duration::from_secs(900);
const MAX_TRACKED_USERS: usize = 10_000;

const MAX_SESSIONS: usize = 10_000;
const MAX_VERIFIED: usize = 4096;
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const COOKIE: &str = "sextant_session";

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `sha256:<hex>` of a token, the form `auth.tokens[].hash` takes.
pub fn hash_token(token: &str) -> String {
    format!("sha256:{}", hex(&sha256(token.as_bytes())))
}

/// A new random token (32 bytes, hex, prefixed `sxt_` so it is recognisable in leaks).
pub fn new_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| "no system randomness".to_string())?;
    Ok(format!("sxt_{}", hex(&b)))
}

/// bcrypt hash of a password (cost 10, like `htpasswd -B`).
pub fn hash_password(password: &str) -> Result<String, String> {
    bcrypt::hash(password, 10).map_err(|e| e.to_string())
}

fn parse_token_hash(h: &str) -> Result<[u8; 32], String> {
    let hexpart = h
        .strip_prefix("sha256:")
        .ok_or("must be sha256:<64 hex digits> (see `sextant auth hash-token`)")?;
    if hexpart.len() != 64 || !hexpart.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("must be sha256:<64 hex digits> (see `sextant auth hash-token`)".into());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hexpart[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn check_bcrypt(h: &str) -> Result<(), String> {
    let ok = ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| h.starts_with(p))
        && h.len() == 60;
    if ok {
        Ok(())
    } else {
        Err("must be a bcrypt hash ($2y$…, 60 characters; see `sextant auth hash-password`)".into())
    }
}

impl Auth {
    /// No credentials configured: everything open; only CORS applies.
    pub fn disabled(cors: CorsConfig) -> Auth {
        Auth {
            tokens: HashMap::new(),
            users: HashMap::new(),
            verified: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            session_max_age: Duration::from_secs(default_session_seconds()),
            failed: Mutex::new(HashMap::new()),
            failures: Default::default(),
            enabled: false,
            tls: false,
            cert_scopes: Vec::new(),
            cors,
        }
    }

    /// Marks the server as speaking TLS (Secure cookies, https origins) and names the scopes
    /// that need a verified client certificate.
    pub fn with_tls(mut self, cert_scopes: Vec<Scope>) -> Auth {
        self.tls = true;
        self.cert_scopes = cert_scopes;
        self
    }

    /// Checks `auth:` and builds the verifier.
    pub fn new(c: &AuthConfig, cors: CorsConfig) -> Result<Auth, AuthConfigError> {
        let mut a = Auth::disabled(cors);
        a.enabled = true;
        a.session_max_age = Duration::from_secs(c.session_max_age_seconds.max(60));
        for (i, t) in c.tokens.iter().enumerate() {
            let d = parse_token_hash(&t.hash).map_err(|e| AuthConfigError::TokenHash(i, e))?;
            if t.scopes.is_empty() {
                return Err(AuthConfigError::TokenScopes(i));
            }
            a.tokens.insert(
                d,
                Principal {
                    name: t.name.clone(),
                    scopes: t.scopes.clone(),
                },
            );
        }
        for (i, u) in c.users.iter().enumerate() {
            check_bcrypt(&u.password_hash).map_err(|e| AuthConfigError::UserHash(i, e))?;
            if u.name.is_empty() || u.name.contains(':') {
                return Err(AuthConfigError::UserName(
                    i,
                    "must be non-empty without ':'".into(),
                ));
            }
            if u.scopes.is_empty() {
                return Err(AuthConfigError::UserName(
                    i,
                    "users need at least one scope".into(),
                ));
            }
            a.users.insert(
                u.name.clone(),
                (
                    u.password_hash.clone(),
                    Principal {
                        name: u.name.clone(),
                        scopes: u.scopes.clone(),
                    },
                ),
            );
        }
        for (name, h) in &c.basic_auth_users {
            check_bcrypt(h).map_err(|e| AuthConfigError::BasicHash(name.clone(), e))?;
            a.users.insert(
                name.clone(),
                (
                    h.clone(),
                    Principal {
                        name: name.clone(),
                        scopes: vec![Scope::Read, Scope::Write, Scope::Admin],
                    },
                ),
            );
        }
        if a.tokens.is_empty() && a.users.is_empty() {
            return Err(AuthConfigError::Empty);
        }
        Ok(a)
    }

    /// Adds a token that is not in the configuration (Sextant's own calls to its API, such as
    /// the report scheduler's queries).
    pub fn with_internal_token(mut self, name: &str, token: &str, scopes: Vec<Scope>) -> Auth {
        self.tokens.insert(
            sha256(token.as_bytes()),
            Principal {
                name: name.to_string(),
                scopes,
            },
        );
        self
    }

    /// Whether credentials are required at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn token(&self, t: &str) -> Option<Principal> {
        let d = sha256(t.as_bytes());
        // HashMap lookup by digest: the compared value is a hash, so timing reveals nothing
        // about the token itself.
        self.tokens.get(&d).cloned()
    }

    /// Takes over `old`'s login sessions (on reload) for users that still exist here, with
    /// their scopes as configured now; sessions of removed users end.
    pub fn adopt_sessions(&self, old: &Auth) {
        if std::ptr::eq(self, old) {
            return;
        }
        let Ok(prev) = old.sessions.lock() else {
            return;
        };
        let Ok(mut mine) = self.sessions.lock() else {
            return;
        };
        for (id, s) in prev.iter() {
            if let Some((_, who)) = self.users.get(&s.who.name) {
                mine.insert(
                    *id,
                    Session {
                        who: who.clone(),
                        expires: s.expires,
                    },
                );
            }
        }
    }

    /// How long `user` is still locked out after too many failed passwords.
    pub fn lockout(&self, user: &str) -> Option<Duration> {
        let f = self.failed.lock().ok()?;
        let &(n, until) = f.get(user)?;
        let now = Instant::now();
        (n >= FREE_FAILURES && until > now).then(|| until - now)
    }

    fn count_failure(&self, reason: usize) {
        self.failures[reason].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn note_bad_password(&self, user: &str) {
        self.count_failure(1);
        let Ok(mut f) = self.failed.lock() else {
            return;
        };
        if f.len() >= MAX_TRACKED_USERS && !f.contains_key(user) {
            // Bounded: forget lockouts that have run out, else everyone (a flood of names).
            let now = Instant::now();
            f.retain(|_, (_, until)| *until > now);
            if f.len() >= MAX_TRACKED_USERS {
                f.clear();
            }
        }
        let e = f.entry(user.to_string()).or_insert((0, Instant::now()));
        e.0 = e.0.saturating_add(1);
        if e.0 >= FREE_FAILURES {
            let secs = 1u64 << (e.0 - FREE_FAILURES).min(20);
            e.1 = Instant::now() + Duration::from_secs(secs).min(MAX_LOCKOUT);
            tracing::warn!(user = %user, failures = e.0, lock_seconds = (e.1 - Instant::now()).as_secs(), "repeated failed logins: user locked out");
        }
    }

    /// `sextant_auth_failures_total{reason}` in the text format.
    pub fn render_failures(&self, o: &mut String) {
        o.push_str("# HELP sextant_auth_failures_total Credentials refused, by reason.\n");
        o.push_str("# TYPE sextant_auth_failures_total counter\n");
        for (i, r) in FAILURE_REASONS.iter().enumerate() {
            let v = self.failures[i].load(std::sync::atomic::Ordering::Relaxed);
            o.push_str(&format!(
                "sextant_auth_failures_total{{reason=\"{r}\"}} {v}\n"
            ));
        }
    }

    fn password(&self, user: &str, pass: &str) -> Option<Principal> {
        let Some((hash, who)) = self.users.get(user) else {
            // Influx v1 clients put a token in the password (`u=any&p=<token>`).
            let t = self.token(pass);
            if t.is_none() {
                self.note_bad_password(user);
            }
            return t;
        };
        let key = sha256(format!("{user}\0{pass}\0{hash}").as_bytes());
        let now = Instant::now();
        if let Ok(v) = self.verified.lock() {
            if v.get(&key)
                .is_some_and(|t| now.duration_since(*t) < VERIFIED_TTL)
            {
                return Some(who.clone());
            }
        }
        if self.lockout(user).is_some() {
            self.count_failure(2);
            return None;
        }
        if !bcrypt::verify(pass, hash).unwrap_or(false) {
            self.note_bad_password(user);
            return None;
        }
        if let Ok(mut f) = self.failed.lock() {
            f.remove(user);
        }
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= MAX_VERIFIED {
                v.clear();
            }
            v.insert(key, now);
        }
        Some(who.clone())
    }

    fn session(&self, id: &str) -> Option<Principal> {
        let d = sha256(id.as_bytes());
        let s = self.sessions.lock().ok()?;
        let sess = s.get(&d)?;
        (sess.expires > Instant::now()).then(|| sess.who.clone())
    }

    fn new_session(&self, who: Principal) -> Option<String> {
        let id = new_token().ok()?;
        let mut s = self.sessions.lock().ok()?;
        let now = Instant::now();
        if s.len() >= MAX_SESSIONS {
            s.retain(|_, v| v.expires > now);
            if s.len() >= MAX_SESSIONS {
                return None;
            }
        }
        s.insert(
            sha256(id.as_bytes()),
            Session {
                who,
                expires: now + self.session_max_age,
            },
        );
        Some(id)
    }

    fn end_session(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&sha256(id.as_bytes()));
        }
    }

    fn cookie(&self, id: &str, max_age: u64) -> String {
        format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.tls { "; Secure" } else { "" }
        )
    }

    fn cors_allows(&self, origin: &str) -> bool {
        self.cors
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// How the caller proved who they are.
enum Cred {
    None,
    Bad,
    /// A user name locked out after failed passwords: 429 with Retry-After.
    Locked(Duration),
    Ok(Principal, /* by cookie */ bool),
}

/// 429 with Retry-After for a locked-out user name.
fn locked_out(wait: Duration) -> Response {
    let secs = wait.as_secs() + 1;
    let mut r = err(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many failed logins for this user; retry in {secs} s"),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn decode_basic(v: &str) -> Option<(String, String)> {
    let raw = base64_decode(v.trim())?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() > 8192 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn credentials(auth: &Auth, req: &Request) -> Cred {
    let headers = req.headers();
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let Ok(v) = v.to_str() else {
            return Cred::Bad;
        };
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        let who = if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            let who = auth.token(rest.trim());
            if who.is_none() {
                auth.count_failure(0);
            }
            who
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Some((u, p)) = decode_basic(rest) else {
                return Cred::Bad;
            };
            // Locked before this attempt: 429 (the attempt that locks still gets 401).
            let locked = auth.lockout(&u);
            let who = auth.password(&u, &p);
            if let (None, Some(wait)) = (&who, locked) {
                return Cred::Locked(wait);
            }
            who
        } else {
            None
        };
        return who.map_or(Cred::Bad, |w| Cred::Ok(w, false));
    }
    // Influx 1.x query parameters, on the Influx write path only.
    if req.uri().path() == "/write" {
        if let Some(p) = query_param(req.uri().query(), "p") {
            let u = query_param(req.uri().query(), "u").unwrap_or_default();
            return auth
                .password(&u, &p)
                .map_or(Cred::Bad, |w| Cred::Ok(w, false));
        }
    }
    if let Some(id) = cookie_value(headers, COOKIE) {
        // A stale cookie is no credential (the login page replaces it).
        if let Some(w) = auth.session(id) {
            return Cred::Ok(w, true);
        }
        auth.count_failure(3);
    }
    Cred::None
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether `origin` names the host this request was sent to. The scheme is not compared: behind
/// a TLS-terminating proxy the browser's `https://` origin reaches a plain-HTTP server.
fn same_origin(headers: &HeaderMap, origin: &str, _tls: bool) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return false,
    };
    let strip = |h: &str| {
        h.strip_suffix(default_port)
            .unwrap_or(h)
            .to_ascii_lowercase()
    };
    strip(rest) == strip(host)
}

/// The request's Origin, or the origin part of its Referer.
fn request_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(o.to_string());
    }
    let r = headers.get(header::REFERER)?.to_str().ok()?;
    let (scheme, rest) = r.split_once("://")?;
    let host = rest.split('/').next()?;
    Some(format!("{scheme}://{host}"))
}

fn err(status: StatusCode, msg: &str) -> Response {
    let body = serde_json::json!({"status": "error", "errorType": "unauthorized", "error": msg});
    let mut r = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sextant\""),
        );
    }
    r
}

fn add_cors(auth: &Auth, origin: Option<&str>, resp: &mut Response) {
    if let Some(o) = origin {
        if auth.cors_allows(o) {
            if let Ok(v) = HeaderValue::from_str(o) {
                let h = resp.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                h.insert(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
    }
}

/// The middleware: CORS preflight, credentials, scope check, CSRF.
pub async fn enforce(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let auth_now = st.auth();
    let auth = &*auth_now;
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Some(o) = origin.as_deref().filter(|o| auth.cors_allows(o)) {
            add_cors(auth, Some(o), &mut r);
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "Authorization, Content-Type, Content-Encoding, X-Prometheus-Remote-Write-Version",
                ),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            return r;
        }
        return StatusCode::FORBIDDEN.into_response();
    }
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let access = required(&template, req.method());
    // A cross-site state-changing request is refused whatever its credentials, unless CORS
    // allows that origin; browsers always send Origin on cross-origin POST/PUT/DELETE.
    let unsafe_method = !is_safe(req.method());
    if unsafe_method {
        if let Some(o) = origin.as_deref() {
            if !same_origin(req.headers(), o, auth.tls) && !auth.cors_allows(o) {
                return err(StatusCode::FORBIDDEN, "cross-origin request refused (CSRF)");
            }
        }
    }
    if let Some(Access::Scope(need)) = access {
        if auth.cert_scopes.contains(&need) {
            let has_cert = req
                .extensions()
                .get::<axum::extract::ConnectInfo<crate::tls::ConnInfo>>()
                .is_some_and(|c| c.0.client_cert);
            if !has_cert {
                return err(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "the {} scope needs a verified TLS client certificate",
                        need.as_str()
                    ),
                );
            }
        }
    }
    if !auth.enabled() || access == Some(Access::Open) {
        let mut r = next.run(req).await;
        add_cors(auth, origin.as_deref(), &mut r);
        return r;
    }
    let need = match access {
        Some(Access::Scope(s)) => s,
        // Fail closed: a route nobody classified is admin-only.
        Some(Access::Open) | None => Scope::Admin,
    };
    match credentials(auth, &req) {
        Cred::None => {
            let wants_html = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            if wants_html && req.method() == Method::GET {
                let next_path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                let q: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next_path)
                    .finish();
                return Redirect::to(&format!("/login?{q}")).into_response();
            }
            err(StatusCode::UNAUTHORIZED, "authentication required")
        }
        Cred::Bad => err(StatusCode::UNAUTHORIZED, "invalid credentials"),
        Cred::Locked(wait) => locked_out(wait),
        Cred::Ok(who, by_cookie) => {
            if !who.allows(need) {
                tracing::debug!(who = %who.name, scope = need.as_str(), path = %template, "scope refused");
                return err(
                    StatusCode::FORBIDDEN,
                    &format!("{:?} lacks the {} scope", who.name, need.as_str()),
                );
            }
            if by_cookie && unsafe_method {
                // Double check for cookie calls: the browser must say where it comes from.
                let ok = request_origin(req.headers())
                    .is_some_and(|o| same_origin(req.headers(), &o, auth.tls));
                if !ok {
                    return err(
                        StatusCode::FORBIDDEN,
                        "state-changing calls with a session cookie need a same-origin Origin or Referer header (CSRF)",
                    );
                }
            }
            let mut r = next.run(req).await;
            add_cors(auth, origin.as_deref(), &mut r);
            r
        }
    }
}

/// `GET /login`: the server-rendered login form.
pub async fn login_page(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let next = query_param(req.uri().query(), "next").unwrap_or_else(|| "/".into());
    let msg = if !st.auth().enabled() {
        "Authentication is not configured; no login is needed."
    } else {
        ""
    };
    login_html(&next, msg, StatusCode::OK)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Only local paths: `/x`, not `//evil.example` or `http://…`.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

fn login_html(next: &str, msg: &str, status: StatusCode) -> Response {
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sextant · log in</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;background:#111217;color:#d8d9da;max-width:360px;margin:80px auto;padding:0 16px}}
input{{display:block;width:100%;box-sizing:border-box;margin:4px 0 12px;padding:8px;background:#22252b;color:#d8d9da;border:1px solid #444;border-radius:3px}}
button{{padding:8px 16px;background:#3d71d9;color:#fff;border:0;border-radius:3px}}.err{{color:#f2495c}}</style></head>
<body><h1>Sextant</h1><p class="err">{msg}</p>
<form method="post" action="/login">
<label>User <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button></form></body></html>
"#,
        msg = escape_html(msg),
        next = escape_html(safe_next(next)),
    );
    let mut r = (status, Html(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `POST /login` (form: username, password, next): sets the session cookie.
pub async fn login(State(st): State<Arc<AppState>>, headers: HeaderMap, body: String) -> Response {
    let auth_now = st.auth();
    let auth = &*auth_now;
    let mut user = String::new();
    let mut pass = String::new();
    let mut next = "/".to_string();
    for (k, v) in form_urlencoded::parse(body.as_bytes()) {
        match &*k {
            "username" => user = v.into_owned(),
            "password" => pass = v.into_owned(),
            "next" => next = v.into_owned(),
            _ => {}
        }
    }
    if !auth.enabled() {
        return Redirect::to(safe_next(&next)).into_response();
    }
    // Login CSRF: a form posted from another site must not log the victim in.
    if let Some(o) = request_origin(&headers) {
        if !same_origin(&headers, &o, auth.tls) {
            return login_html(&next, "Cross-origin login refused.", StatusCode::FORBIDDEN);
        }
    }
    if let Some(wait) = auth.lockout(&user) {
        auth.count_failure(2);
        tracing::info!(user = %user, "login refused: locked out");
        let mut r = login_html(
            &next,
            &format!(
                "Too many failed logins; try again in {} s.",
                wait.as_secs() + 1
            ),
            StatusCode::TOO_MANY_REQUESTS,
        );
        if let Ok(v) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let who = match auth.users.get(&user) {
        Some(_) => auth.password(&user, &pass),
        None => {
            auth.note_bad_password(&user);
            None
        }
    };
    let Some(who) = who else {
        tracing::info!(user = %user, "login failed");
        return login_html(&next, "Wrong user or password.", StatusCode::UNAUTHORIZED);
    };
    let Some(id) = auth.new_session(who) else {
        return login_html(
            &next,
            "Too many sessions; try later.",
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    tracing::info!(user = %user, "login");
    let mut r = Redirect::to(safe_next(&next)).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth.cookie(&id, auth.session_max_age.as_secs())) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `GET /logout` shows a button; `POST /logout` ends the session and clears the cookie.
pub async fn logout(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let auth_now = st.auth();
    let auth = &*auth_now;
    if req.method() == Method::GET {
        return Html(
            "<!doctype html><html><body style=\"font:15px system-ui;background:#111217;color:#d8d9da;margin:80px auto;max-width:360px\">\
             <form method=\"post\" action=\"/logout\"><button type=\"submit\">Log out of Sextant</button></form></body></html>",
        )
        .into_response();
    }
    if let Some(o) = request_origin(req.headers()) {
        if !same_origin(req.headers(), &o, auth.tls) {
            return err(StatusCode::FORBIDDEN, "cross-origin request refused (CSRF)");
        }
    }
    if let Some(id) = cookie_value(req.headers(), COOKIE) {
        auth.end_session(id);
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth.cookie("", 0)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_roundtrip() {
        let t = new_token().unwrap();
        assert!(t.starts_with("sxt_") && t.len() == 68);
        let h = hash_token(&t);
        assert_eq!(parse_token_hash(&h).unwrap(), sha256(t.as_bytes()));
        assert!(parse_token_hash("md5:abc").is_err());
        assert!(parse_token_hash("sha256:zz").is_err());
    }

    #[test]
    fn basic_decoding() {
        assert_eq!(
            decode_basic("YWxpY2U6czNjcjN0"),
            Some(("alice".into(), "s3cr3t".into()))
        );
        assert_eq!(decode_basic("!!!"), None);
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
    }

    #[test]
    fn origin_matching() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("sextant.example:9595"),
        );
        assert!(same_origin(&h, "http://sextant.example:9595", false));
        assert!(same_origin(&h, "https://Sextant.example:9595", false));
        assert!(!same_origin(&h, "http://evil.example:9595", false));
        assert!(!same_origin(&h, "http://sextant.example:9596", false));
        assert!(!same_origin(&h, "null", false));
        h.insert(header::HOST, HeaderValue::from_static("sextant.example"));
        assert!(same_origin(&h, "https://sextant.example:443", false));
        assert!(same_origin(&h, "https://sextant.example", false));
    }

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next("/#/explore"), "/#/explore");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
    }

    #[test]
    fn config_errors_name_the_field() {
        let c = AuthConfig {
            tokens: vec![TokenConfig {
                name: "a".into(),
                hash: "plain".into(),
                scopes: vec![Scope::Read],
            }],
            ..Default::default()
        };
        let e = Auth::new(&c, CorsConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("tokens[0].hash:"), "{e}");
        assert!(Auth::new(&AuthConfig::default(), CorsConfig::default()).is_err());
    }

    #[test]
    fn admin_implies_everything() {
        let p = Principal {
            name: "x".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(p.allows(Scope::Read) && p.allows(Scope::Write));
        let w = Principal {
            name: "w".into(),
            scopes: vec![Scope::Write],
        };
        assert!(!w.allows(Scope::Read) && !w.allows(Scope::Admin));
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod router_tests;
