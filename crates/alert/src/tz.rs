//! Time zones the way Go's `time.LoadLocation` finds and reads them, so that Alertmanager
//! configuration (`time_intervals[].location`) and templates (`tz`) accept the same zone names
//! and give the same local times, daylight saving included. Zones are read from the system's
//! compiled tz database: TZif files (versions 1–3) under `$ZONEINFO` or the usual zoneinfo
//! directories, with the POSIX TZ rule in a v2+ footer extending the table past its last
//! transition. `""`/`"UTC"` are UTC and `"Local"` is the process' zone (`$TZ`, else
//! `/etc/localtime`), as in Go. No tz database is bundled.

use std::path::Path;
use std::sync::Arc;

/// A zone name could not be turned into a zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TzError {
    /// Go's `time: invalid location name`.
    #[error("time: invalid location name")]
    InvalidName,
    /// No zoneinfo file of that name (Go's wording).
    #[error("unknown time zone {0}")]
    Unknown(String),
    /// A file was found but is not valid TZif.
    #[error("malformed time zone information for {0}: {1}")]
    Malformed(String, String),
}

/// One local time type of a zone: offset east of UTC, daylight flag and abbreviation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneType {
    pub offset: i32,
    pub is_dst: bool,
    pub abbr: String,
}

/// A loaded time zone (Go's `*time.Location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: String,
    types: Vec<ZoneType>,
    /// Transition instants (Unix seconds, ascending) and the type in effect from then on.
    tx: Vec<(i64, u8)>,
    /// POSIX TZ rule for instants after the last transition.
    extend: Option<String>,
}

/// Largest zoneinfo file read (real ones are a few KiB).
const MAX_TZIF: u64 = 256 * 1024;

/// Directories Go's `platformZoneSources` searches on Unix.
const ZONE_DIRS: [&str; 4] = [
    "/usr/share/zoneinfo/",
    "/usr/share/lib/zoneinfo/",
    "/usr/lib/locale/TZ/",
    "/etc/zoneinfo/",
];

impl Default for Zone {
    fn default() -> Self {
        Zone::utc()
    }
}

impl Zone {
    /// Go's `time.UTC`.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            types: vec![ZoneType {
                offset: 0,
                is_dst: false,
                abbr: "UTC".into(),
            }],
            tx: Vec::new(),
            extend: None,
        }
    }

    /// A zone with one fixed offset (Go's `time.FixedZone`).
    pub fn fixed(name: &str, offset: i32) -> Zone {
        Zone {
            name: name.into(),
            types: vec![ZoneType {
                offset,
                is_dst: false,
                abbr: name.into(),
            }],
            tx: Vec::new(),
            extend: None,
        }
    }

    /// The zone's name as given to [`Zone::load`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Go's `time.LoadLocation(name)`.
    pub fn load(name: &str) -> Result<Zone, TzError> {
        Zone::load_with(
            name,
            std::env::var("ZONEINFO").ok().as_deref(),
            tz_env().as_deref(),
        )
    }

    /// [`Zone::load`] with the `ZONEINFO` and `TZ` environment values given.
    fn load_with(name: &str, zoneinfo: Option<&str>, tz: Option<&str>) -> Result<Zone, TzError> {
        match name {
            "" | "UTC" => return Ok(Zone::utc()),
            "Local" => return Ok(Zone::local_with(tz)),
            _ => {}
        }
        if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
            return Err(TzError::InvalidName);
        }
        if let Some(dir) = zoneinfo.filter(|d| !d.is_empty()) {
            if let Ok(data) = read_limited(&Path::new(dir).join(name)) {
                if let Ok(z) = Zone::from_tzif(name, &data) {
                    return Ok(z);
                }
            }
        }
        load_from(name, &ZONE_DIRS)
    }

    /// Go's `time.Local`: `$TZ` (unset: `/etc/localtime`; empty or unreadable: UTC).
    pub fn local() -> Zone {
        Zone::local_with(tz_env().as_deref())
    }

    fn local_with(tz: Option<&str>) -> Zone {
        let loaded = match tz {
            None => read_limited(Path::new("/etc/localtime"))
                .ok()
                .and_then(|d| Zone::from_tzif("Local", &d).ok()),
            Some(tz) => {
                let tz = tz.strip_prefix(':').unwrap_or(tz);
                if tz.starts_with('/') {
                    read_limited(Path::new(tz))
                        .ok()
                        .and_then(|d| Zone::from_tzif("Local", &d).ok())
                } else if !tz.is_empty() && tz != "UTC" {
                    load_from(tz, &ZONE_DIRS).ok()
                } else {
                    None
                }
            }
        };
        let mut z = loaded.unwrap_or_else(Zone::utc);
        z.name = "Local".into();
        z
    }

    /// Parses TZif data (RFC 8536, versions 1–3), like Go's `LoadLocationFromTZData`.
    pub fn from_tzif(name: &str, data: &[u8]) -> Result<Zone, TzError> {
        let bad = |m: &str| TzError::Malformed(name.to_string(), m.to_string());
        let mut r = Reader { d: data, pos: 0 };
        let hdr = r.header().ok_or_else(|| bad("bad header"))?;
        let (version, mut counts) = hdr;
        let mut time_size = 4;
        if version >= b'2' {
            // Skip the 32-bit block; the 64-bit one follows with its own header.
            r.skip(counts.v1_len()).ok_or_else(|| bad("truncated"))?;
            counts = r.header().ok_or_else(|| bad("bad v2 header"))?.1;
            time_size = 8;
        }
        let c = counts;
        if c.typecnt == 0 || c.typecnt > 256 || c.timecnt > 100_000 || c.charcnt > 65_536 {
            return Err(bad("invalid counts"));
        }
        let mut tx = Vec::with_capacity(c.timecnt);
        let mut whens = Vec::with_capacity(c.timecnt);
        for _ in 0..c.timecnt {
            let w = if time_size == 8 {
                r.i64()
            } else {
                r.i32().map(i64::from)
            };
            whens.push(w.ok_or_else(|| bad("truncated"))?);
        }
        for w in whens {
            let idx = r.u8().ok_or_else(|| bad("truncated"))?;
            if usize::from(idx) >= c.typecnt {
                return Err(bad("transition type out of range"));
            }
            tx.push((w, idx));
        }
        let mut raw_types = Vec::with_capacity(c.typecnt);
        for _ in 0..c.typecnt {
            let off = r.i32().ok_or_else(|| bad("truncated"))?;
            let dst = r.u8().ok_or_else(|| bad("truncated"))?;
            let ai = r.u8().ok_or_else(|| bad("truncated"))?;
            raw_types.push((off, dst != 0, usize::from(ai)));
        }
        let chars = r.take(c.charcnt).ok_or_else(|| bad("truncated"))?;
        let mut types = Vec::with_capacity(c.typecnt);
        for (offset, is_dst, ai) in raw_types {
            if ai > chars.len() {
                return Err(bad("abbreviation index out of range"));
            }
            let end = chars[ai..]
                .iter()
                .position(|&b| b == 0)
                .map_or(chars.len(), |p| ai + p);
            types.push(ZoneType {
                offset,
                is_dst,
                abbr: String::from_utf8_lossy(&chars[ai..end]).into_owned(),
            });
        }
        r.skip(c.leapcnt * (time_size + 4) + c.isstdcnt + c.isutcnt)
            .ok_or_else(|| bad("truncated"))?;
        let mut extend = None;
        if version >= b'2' {
            // Footer: "\n" TZ-string "\n".
            let rest = &data[r.pos.min(data.len())..];
            if rest.first() == Some(&b'\n') {
                if let Some(end) = rest[1..].iter().position(|&b| b == b'\n') {
                    let s = String::from_utf8_lossy(&rest[1..1 + end]).into_owned();
                    if !s.is_empty() {
                        extend = Some(s);
                    }
                }
            }
        }
        if tx.is_empty() {
            // Go: a fake transition covering all time, so the footer (if any) applies everywhere.
            tx.push((i64::MIN, 0));
        }
        Ok(Zone {
            name: name.to_string(),
            types,
            tx,
            extend,
        })
    }

    /// The local time type in effect at Unix second `sec` (Go's `Location.lookup`).
    pub fn lookup(&self, sec: i64) -> ZoneType {
        let Some(&(first_when, _)) = self.tx.first() else {
            return self
                .types
                .first()
                .cloned()
                .unwrap_or_else(|| Zone::utc().types[0].clone());
        };
        if sec < first_when {
            return self.types[self.first_zone()].clone();
        }
        // Largest transition <= sec.
        let i = self.tx.partition_point(|&(w, _)| w <= sec) - 1;
        if i == self.tx.len() - 1 {
            if let Some(ext) = &self.extend {
                if let Some(t) = tzset(ext, sec) {
                    return t;
                }
            }
        }
        self.types[usize::from(self.tx[i].1)].clone()
    }

    /// Offset east of UTC in seconds at Unix second `sec`.
    pub fn offset_at(&self, sec: i64) -> i32 {
        self.lookup(sec).offset
    }

    /// Go's `lookupFirstZone`: the type for instants before the first transition.
    fn first_zone(&self) -> usize {
        let used = |i: usize| self.tx.iter().any(|&(_, t)| usize::from(t) == i);
        if !used(0) {
            return 0;
        }
        if let Some(&(_, t0)) = self.tx.first() {
            let t0 = usize::from(t0);
            if self.types[t0].is_dst {
                for z in (0..t0).rev() {
                    if !self.types[z].is_dst {
                        return z;
                    }
                }
            }
        }
        self.types.iter().position(|t| !t.is_dst).unwrap_or(0)
    }
}

/// `$TZ`, `None` when unset (set but empty is `Some("")`, which Go reads as UTC).
fn tz_env() -> Option<String> {
    std::env::var_os("TZ").map(|v| v.to_string_lossy().into_owned())
}

fn load_from(name: &str, dirs: &[&str]) -> Result<Zone, TzError> {
    let mut first_err = None;
    for dir in dirs {
        if let Ok(data) = read_limited(&Path::new(dir).join(name)) {
            match Zone::from_tzif(name, &data) {
                Ok(z) => return Ok(z),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| TzError::Unknown(name.to_string())))
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a file"));
    }
    let mut out = Vec::new();
    f.take(MAX_TZIF).read_to_end(&mut out)?;
    Ok(out)
}

#[derive(Clone, Copy)]
struct Counts {
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Counts {
    /// Length of the version 1 (32-bit) data block.
    fn v1_len(&self) -> usize {
        self.timecnt * 5
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * 8
            + self.isstdcnt
            + self.isutcnt
    }
}

struct Reader<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.d.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.u32().map(|v| v as i32)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    /// "TZif", version, 15 reserved bytes, six counts.
    fn header(&mut self) -> Option<(u8, Counts)> {
        if self.take(4)? != b"TZif" {
            return None;
        }
        let version = self.u8()?;
        let version = if version == 0 { b'1' } else { version };
        self.skip(15)?;
        let mut n = [0usize; 6];
        for v in &mut n {
            *v = usize::try_from(self.u32()?).ok()?;
        }
        Some((
            version,
            Counts {
                isutcnt: n[0],
                isstdcnt: n[1],
                leapcnt: n[2],
                timecnt: n[3],
                typecnt: n[4],
                charcnt: n[5],
            },
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// POSIX TZ rules (the TZif footer), after Go's `tzset`.

#[derive(Clone, Copy)]
enum Rule {
    /// `Jn`: day 1–365, February 29 never counted.
    Julian(i64),
    /// `n`: day 0–365, counting February 29.
    Doy(i64),
    /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    MonthWeekDay { mon: u32, week: u32, day: i64 },
}

/// The type in effect at `sec` under rule string `s`; `None` if `s` does not parse.
fn tzset(s: &str, sec: i64) -> Option<ZoneType> {
    let (std_name, s) = tzset_name(s)?;
    let (std_off, s) = tzset_offset(s)?;
    let std_off = -std_off;
    if s.is_empty() || s.starts_with(',') {
        return Some(ZoneType {
            offset: i32::try_from(std_off).ok()?,
            is_dst: false,
            abbr: std_name,
        });
    }
    let (dst_name, s) = tzset_name(s)?;
    let (dst_off, s) = if s.is_empty() || s.starts_with(',') || s.starts_with(';') {
        (std_off + 3600, s)
    } else {
        let (o, s) = tzset_offset(s)?;
        (-o, s)
    };
    let s = if s.is_empty() { ",M3.2.0,M11.1.0" } else { s };
    let s = s.strip_prefix(',').or_else(|| s.strip_prefix(';'))?;
    let (start, s) = tzset_rule(s)?;
    let s = s.strip_prefix(',')?;
    let (end, s) = tzset_rule(s)?;
    if !s.is_empty() {
        return None;
    }
    let days = sec.div_euclid(86_400);
    let (year, _, _) = civil(days);
    let year_start = days_from_civil(year, 1, 1) * 86_400;
    let ysec = sec - year_start;
    let mut start_sec = rule_time(year, start, std_off);
    let mut end_sec = rule_time(year, end, dst_off);
    let (mut std, mut dst) = (
        ZoneType {
            offset: i32::try_from(std_off).ok()?,
            is_dst: false,
            abbr: std_name,
        },
        ZoneType {
            offset: i32::try_from(dst_off).ok()?,
            is_dst: true,
            abbr: dst_name,
        },
    );
    if end_sec < start_sec {
        // Southern hemisphere: swap, as Go does.
        std::mem::swap(&mut start_sec, &mut end_sec);
        std::mem::swap(&mut std, &mut dst);
    }
    if ysec < start_sec || ysec >= end_sec {
        Some(std)
    } else {
        Some(dst)
    }
}

fn tzset_name(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((rest[..end].to_string(), &rest[end + 1..]));
    }
    let end = s
        .find(|c: char| c.is_ascii_digit() || c == ',' || c == '-' || c == '+')
        .unwrap_or(s.len());
    if end < 3 {
        return None;
    }
    Some((s[..end].to_string(), &s[end..]))
}

/// `[+-]hh[:mm[:ss]]` in seconds (sign as written).
fn tzset_offset(s: &str) -> Option<(i64, &str)> {
    let (neg, s) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let (h, mut s) = tzset_num(s, 0, 24 * 7)?;
    let mut off = h * 3600;
    for mult in [60, 1] {
        let Some(rest) = s.strip_prefix(':') else {
            break;
        };
        let (n, rest) = tzset_num(rest, 0, 59)?;
        off += n * mult;
        s = rest;
    }
    Some((if neg { -off } else { off }, s))
}

fn tzset_num(s: &str, min: i64, max: i64) -> Option<(i64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 || end > 4 {
        return None;
    }
    let n: i64 = s[..end].parse().ok()?;
    (min..=max).contains(&n).then_some((n, &s[end..]))
}

fn tzset_rule(s: &str) -> Option<((Rule, i64), &str)> {
    let (rule, s) = if let Some(rest) = s.strip_prefix('J') {
        let (d, rest) = tzset_num(rest, 1, 365)?;
        (Rule::Julian(d), rest)
    } else if let Some(rest) = s.strip_prefix('M') {
        let (m, rest) = tzset_num(rest, 1, 12)?;
        let (w, rest) = tzset_num(rest.strip_prefix('.')?, 1, 5)?;
        let (d, rest) = tzset_num(rest.strip_prefix('.')?, 0, 6)?;
        (
            Rule::MonthWeekDay {
                mon: m as u32,
                week: w as u32,
                day: d,
            },
            rest,
        )
    } else if s.starts_with(|c: char| c.is_ascii_digit()) {
        let (d, rest) = tzset_num(s, 0, 365)?;
        (Rule::Doy(d), rest)
    } else {
        return None;
    };
    match s.strip_prefix('/') {
        Some(rest) => {
            let (t, rest) = tzset_offset(rest)?;
            Some(((rule, t), rest))
        }
        None => Some(((rule, 2 * 3600), s)),
    }
}

/// Seconds after the start of `year` (UTC) at which `rule` switches, with `off` the offset
/// in effect before the switch (Go's `tzruleTime`).
fn rule_time(year: i32, (rule, time): (Rule, i64), off: i64) -> i64 {
    let day = match rule {
        Rule::Julian(d) => {
            let mut d = d - 1;
            if is_leap(year) && d >= 59 {
                d += 1;
            }
            d
        }
        Rule::Doy(d) => d,
        Rule::MonthWeekDay { mon, week, day } => {
            let first = days_from_civil(year, mon, 1);
            let dow = (first + 4).rem_euclid(7); // 1970-01-01 was a Thursday.
            let mut d = (day - dow).rem_euclid(7);
            let n = days_in_month(year, mon);
            for _ in 1..week {
                if d + 7 >= n {
                    break;
                }
                d += 7;
            }
            first + d - days_from_civil(year, 1, 1)
        }
    };
    day * 86_400 + time - off
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(if m <= 2 { y - 1 } else { y });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) from days since 1970-01-01.
pub fn civil(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// Zones are immutable once loaded; share them.
pub type SharedZone = Arc<Zone>;

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> i64 {
        sextant_model::time::parse_timestamp_ms(s).unwrap() / 1000
    }

    fn have(name: &str) -> bool {
        let ok = Path::new("/usr/share/zoneinfo").join(name).exists();
        if !ok {
            eprintln!("skipping: /usr/share/zoneinfo/{name} missing (install tzdata)");
            assert!(
                std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() != Ok("1"),
                "tzdata is required"
            );
        }
        ok
    }

    fn at(z: &Zone, t: &str) -> (i32, bool, String) {
        let l = z.lookup(secs(t));
        (l.offset, l.is_dst, l.abbr)
    }

    #[test]
    fn berlin_across_both_switches() {
        if !have("Europe/Berlin") {
            return;
        }
        let z = Zone::load("Europe/Berlin").unwrap();
        // 2024-03-31: 02:00 CET becomes 03:00 CEST at 01:00 UTC (02:00–03:00 local never happens).
        assert_eq!(at(&z, "2024-03-31T00:59:59Z"), (3600, false, "CET".into()));
        assert_eq!(at(&z, "2024-03-31T01:00:00Z"), (7200, true, "CEST".into()));
        // 2024-10-27: 03:00 CEST becomes 02:00 CET at 01:00 UTC (02:00–03:00 local twice).
        assert_eq!(at(&z, "2024-10-27T00:59:59Z"), (7200, true, "CEST".into()));
        assert_eq!(at(&z, "2024-10-27T01:00:00Z"), (3600, false, "CET".into()));
        // Far past the table: the footer rule (CET-1CEST,M3.5.0,M10.5.0/3) decides.
        assert_eq!(at(&z, "2100-03-28T00:59:59Z"), (3600, false, "CET".into()));
        assert_eq!(at(&z, "2100-03-28T01:00:00Z"), (7200, true, "CEST".into()));
        assert_eq!(at(&z, "2100-10-31T00:59:59Z"), (7200, true, "CEST".into()));
        assert_eq!(at(&z, "2100-10-31T01:00:00Z"), (3600, false, "CET".into()));
        // Before the table: local mean time.
        assert_eq!(at(&z, "1800-01-01T00:00:00Z").0, 3208);
    }

    #[test]
    fn new_york_across_both_switches() {
        if !have("America/New_York") {
            return;
        }
        let z = Zone::load("America/New_York").unwrap();
        assert_eq!(
            at(&z, "2024-03-10T06:59:59Z"),
            (-18000, false, "EST".into())
        );
        assert_eq!(at(&z, "2024-03-10T07:00:00Z"), (-14400, true, "EDT".into()));
        assert_eq!(at(&z, "2024-11-03T05:59:59Z"), (-14400, true, "EDT".into()));
        assert_eq!(
            at(&z, "2024-11-03T06:00:00Z"),
            (-18000, false, "EST".into())
        );
        assert_eq!(at(&z, "2077-03-14T07:00:00Z"), (-14400, true, "EDT".into()));
        assert_eq!(
            at(&z, "2077-03-14T06:59:59Z"),
            (-18000, false, "EST".into())
        );
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        if !have("Australia/Lord_Howe") {
            return;
        }
        let z = Zone::load("Australia/Lord_Howe").unwrap();
        // DST (+11) ends 2024-04-07 02:00 local = 2024-04-06T15:00Z, back to +10:30.
        assert_eq!(at(&z, "2024-04-06T14:59:59Z"), (39600, true, "+11".into()));
        assert_eq!(
            at(&z, "2024-04-06T15:00:00Z"),
            (37800, false, "+1030".into())
        );
        // DST starts 2024-10-06 02:00 local (+10:30) = 2024-10-05T15:30Z.
        assert_eq!(
            at(&z, "2024-10-05T15:29:59Z"),
            (37800, false, "+1030".into())
        );
        assert_eq!(at(&z, "2024-10-05T15:30:00Z"), (39600, true, "+11".into()));
        // Southern-hemisphere footer rule far in the future.
        assert_eq!(at(&z, "2090-01-01T00:00:00Z"), (39600, true, "+11".into()));
        assert_eq!(
            at(&z, "2090-07-01T00:00:00Z"),
            (37800, false, "+1030".into())
        );
    }

    #[test]
    fn names_as_go_resolves_them() {
        assert_eq!(Zone::load("").unwrap(), Zone::utc());
        assert_eq!(Zone::load("UTC").unwrap(), Zone::utc());
        assert_eq!(Zone::load("Local").unwrap().name(), "Local");
        assert_eq!(Zone::load("../etc/passwd"), Err(TzError::InvalidName));
        assert_eq!(Zone::load("/etc/localtime"), Err(TzError::InvalidName));
        assert_eq!(
            Zone::load("Mars/Olympus_Mons"),
            Err(TzError::Unknown("Mars/Olympus_Mons".into()))
        );
        if have("Etc/GMT+2") {
            let z = Zone::load("Etc/GMT+2").unwrap();
            assert_eq!(z.offset_at(0), -7200);
        }
    }

    #[test]
    fn zoneinfo_and_tz_environment() {
        if !have("Europe/Berlin") {
            return;
        }
        let berlin = std::fs::read("/usr/share/zoneinfo/Europe/Berlin").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Test")).unwrap();
        std::fs::write(dir.path().join("Test/Zone"), &berlin).unwrap();
        std::fs::write(dir.path().join("Test/Broken"), b"TZif2 garbage").unwrap();
        let zi = dir.path().to_str();
        // $ZONEINFO is searched first, then the system directories.
        let z = Zone::load_with("Test/Zone", zi, None).unwrap();
        assert_eq!(z.offset_at(secs("2024-07-01T00:00:00Z")), 7200);
        assert_eq!(
            Zone::load_with("Test/Zone", None, None),
            Err(TzError::Unknown("Test/Zone".into()))
        );
        assert!(Zone::load_with("America/New_York", zi, None).is_ok());
        assert_eq!(
            Zone::load_with("Test/Broken", zi, None),
            Err(TzError::Unknown("Test/Broken".into()))
        );
        // Local: TZ names a zone (optionally with ':'), an absolute file, or (empty) UTC.
        let july = secs("2024-07-01T00:00:00Z");
        let local = |tz: Option<&str>| Zone::load_with("Local", None, tz).unwrap();
        assert_eq!(local(Some("Europe/Berlin")).offset_at(july), 7200);
        assert_eq!(local(Some(":America/New_York")).offset_at(july), -14400);
        let path = dir.path().join("Test/Zone");
        assert_eq!(local(path.to_str()).offset_at(july), 7200);
        assert_eq!(local(Some("")).offset_at(july), 0);
        assert_eq!(local(Some("Nowhere/Nothing")).offset_at(july), 0);
        assert_eq!(local(Some("Europe/Berlin")).name(), "Local");
    }

    #[test]
    fn footer_rules_and_garbage() {
        // A v1 file with no transitions and one type.
        let mut v1 = b"TZif\0".to_vec();
        v1.extend([0u8; 15]);
        for n in [0u32, 0, 0, 0, 1, 4] {
            v1.extend(n.to_be_bytes());
        }
        v1.extend((-3600i32).to_be_bytes());
        v1.extend([0, 0]);
        v1.extend(b"ABC\0");
        let z = Zone::from_tzif("x", &v1).unwrap();
        assert_eq!(
            z.lookup(0),
            ZoneType {
                offset: -3600,
                is_dst: false,
                abbr: "ABC".into()
            }
        );
        assert!(Zone::from_tzif("x", &v1[..v1.len() - 3]).is_err());
        assert!(Zone::from_tzif("x", b"TZif2").is_err());
        assert!(Zone::from_tzif("x", b"").is_err());
        // Rule strings: default US rule, <+03>-3 names, Julian days.
        let t = tzset("EST5EDT", secs("2024-07-01T00:00:00Z")).unwrap();
        assert_eq!((t.offset, t.is_dst, t.abbr.as_str()), (-14400, true, "EDT"));
        let t = tzset("<+03>-3", 0).unwrap();
        assert_eq!((t.offset, t.abbr.as_str()), (10800, "+03"));
        let t = tzset("XST-1XDT,J60,J300", secs("2023-03-01T12:00:00Z")).unwrap();
        assert!(t.is_dst);
        let t = tzset("XST-1XDT,J60,J300", secs("2023-02-28T12:00:00Z")).unwrap();
        assert!(!t.is_dst);
        assert!(tzset("X", 0).is_none());
        assert!(tzset("EST5EDT,M3.2.0", 0).is_none());
    }
}
