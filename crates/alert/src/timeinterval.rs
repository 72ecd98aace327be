//! Alertmanager's `time_intervals` (and legacy `mute_time_intervals`): named sets of time ranges
//! (`times`, `weekdays`, `days_of_month`, `months`, `years`, `location`) that mute a route
//! (`mute_time_intervals`) or restrict it to those times (`active_time_intervals`).
//! `location` is resolved like Go's `time.LoadLocation` (see [`crate::tz`]): any IANA zone of
//! the system's tz database, `Local` or `UTC`; times of day and dates are read on the local
//! clock, so `09:00`–`17:00` follows daylight saving switches.

use std::sync::Arc;

use serde::Deserialize;

use crate::tz::{civil, Zone};

/// One entry of a named interval's `time_intervals` list, as written in YAML.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default)]
    pub times: Vec<TimeRangeSpec>,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default)]
    pub days_of_month: Vec<String>,
    #[serde(default)]
    pub months: Vec<String>,
    #[serde(default)]
    pub years: Vec<String>,
    #[serde(default)]
    pub location: Option<String>,
}

/// `{start_time: "HH:MM", end_time: "HH:MM"}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeSpec {
    pub start_time: String,
    pub end_time: String,
}

/// A validated interval: every non-empty list must match for a time to be inside.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeInterval {
    /// Minutes of the day, `[start, end)`.
    pub times: Vec<(u32, u32)>,
    /// 0 = Sunday.
    pub weekdays: Vec<(u32, u32)>,
    /// Inclusive; negative counts from the month's end (-1 = last day).
    pub days_of_month: Vec<(i32, i32)>,
    pub months: Vec<(u32, u32)>,
    pub years: Vec<(i32, i32)>,
    /// The zone whose local clock the ranges refer to (UTC by default).
    pub location: Arc<Zone>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn split_range(s: &str) -> (&str, &str) {
    // A leading '-' belongs to a negative number, so split at the first ':'.
    match s.split_once(':') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    }
}

fn parse_clock(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid time of day {s:?}: expected HH:MM");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_named(s: &str, names: &[&str], base: u32, what: &str) -> Result<u32, String> {
    let l = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == l) {
        return Ok(i as u32 + base);
    }
    if what == "month" {
        if let Ok(n) = l.parse::<u32>() {
            if (1..=12).contains(&n) {
                return Ok(n);
            }
        }
    }
    Err(format!("invalid {what} {s:?}"))
}

/// Resolves a `location` the way Alertmanager does (Go's `time.LoadLocation`).
pub fn parse_location(s: &str) -> Result<Zone, String> {
    Zone::load(s).map_err(|e| e.to_string())
}

impl TimeIntervalSpec {
    /// Validates and converts; the error names the offending field.
    pub fn build(&self) -> Result<TimeInterval, String> {
        let mut ti = TimeInterval::default();
        for t in &self.times {
            let s = parse_clock(&t.start_time).map_err(|e| format!("times: {e}"))?;
            let e = parse_clock(&t.end_time).map_err(|e| format!("times: {e}"))?;
            if s >= e {
                return Err(format!(
                    "times: start_time {:?} must be before end_time {:?}",
                    t.start_time, t.end_time
                ));
            }
            ti.times.push((s, e));
        }
        for w in &self.weekdays {
            let (a, b) = split_range(w);
            let a =
                parse_named(a, &WEEKDAYS, 0, "weekday").map_err(|e| format!("weekdays: {e}"))?;
            let b =
                parse_named(b, &WEEKDAYS, 0, "weekday").map_err(|e| format!("weekdays: {e}"))?;
            if a > b {
                return Err(format!(
                    "weekdays: start day cannot be after end day in {w:?}"
                ));
            }
            ti.weekdays.push((a, b));
        }
        for d in &self.days_of_month {
            let (a, b) = split_range(d);
            let p = |x: &str| -> Result<i32, String> {
                let v: i32 = x
                    .parse()
                    .map_err(|_| format!("days_of_month: invalid day {x:?}"))?;
                if v == 0 || !(-31..=31).contains(&v) {
                    return Err(format!("days_of_month: {v} is not a day of the month"));
                }
                Ok(v)
            };
            let (a, b) = (p(a)?, p(b)?);
            if (a > 0) == (b > 0) && a > b {
                return Err(format!(
                    "days_of_month: start day cannot be after end day in {d:?}"
                ));
            }
            ti.days_of_month.push((a, b));
        }
        for m in &self.months {
            let (a, b) = split_range(m);
            let a = parse_named(a, &MONTHS, 1, "month").map_err(|e| format!("months: {e}"))?;
            let b = parse_named(b, &MONTHS, 1, "month").map_err(|e| format!("months: {e}"))?;
            if a > b {
                return Err(format!(
                    "months: start month cannot be after end month in {m:?}"
                ));
            }
            ti.months.push((a, b));
        }
        for y in &self.years {
            let (a, b) = split_range(y);
            let p = |x: &str| -> Result<i32, String> {
                x.parse().map_err(|_| format!("years: invalid year {x:?}"))
            };
            let (a, b) = (p(a)?, p(b)?);
            if a > b {
                return Err(format!(
                    "years: start year cannot be after end year in {y:?}"
                ));
            }
            ti.years.push((a, b));
        }
        if let Some(l) = &self.location {
            ti.location = Arc::new(parse_location(l).map_err(|e| format!("location: {e}"))?);
        }
        Ok(ti)
    }
}

fn days_in_month(y: i32, m: u32) -> i32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl TimeInterval {
    /// Is the instant `ms` (Unix milliseconds) inside this interval?
    pub fn contains(&self, ms: i64) -> bool {
        let utc = ms.div_euclid(1000);
        let secs = utc + i64::from(self.location.offset_at(utc));
        let days = secs.div_euclid(86400);
        let minute = (secs.rem_euclid(86400) / 60) as u32;
        let (y, m, d) = civil(days);
        let wd = (days + 4).rem_euclid(7) as u32;
        if !self.times.is_empty() && !self.times.iter().any(|&(s, e)| minute >= s && minute < e) {
            return false;
        }
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|&(a, b)| wd >= a && wd <= b) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let n = days_in_month(y, m);
            let abs = |v: i32| if v < 0 { n + v + 1 } else { v.min(n) };
            let ok = self.days_of_month.iter().any(|&(a, b)| {
                let (a, b) = (abs(a), abs(b));
                a <= b && (d as i32) >= a && (d as i32) <= b
            });
            if !ok {
                return false;
            }
        }
        if !self.months.is_empty() && !self.months.iter().any(|&(a, b)| m >= a && m <= b) {
            return false;
        }
        if !self.years.is_empty() && !self.years.iter().any(|&(a, b)| y >= a && y <= b) {
            return false;
        }
        true
    }
}

/// Is `ms` inside any of the intervals?
pub fn any_contains(intervals: &[TimeInterval], ms: i64) -> bool {
    intervals.iter().any(|t| t.contains(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        sextant_model::time::parse_timestamp_ms(s).unwrap()
    }

    fn spec(yaml: &str) -> TimeInterval {
        let s: TimeIntervalSpec = serde_saphyr::from_str(yaml).unwrap();
        s.build().unwrap()
    }

    fn tzdata() -> bool {
        let ok = std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists();
        if !ok {
            eprintln!("skipping: no tz database in /usr/share/zoneinfo (install tzdata)");
            assert!(
                std::env::var("SEXTANT_REQUIRE_PEERS").as_deref() != Ok("1"),
                "tzdata is required"
            );
        }
        ok
    }

    #[test]
    fn business_hours_follow_daylight_saving() {
        if !tzdata() {
            return;
        }
        let t =
            spec("times: [{start_time: '09:00', end_time: '17:00'}]\nlocation: 'Europe/Berlin'\n");
        // Friday 2024-03-29 (CET, +01:00) and Tuesday 2024-04-02 (CEST, +02:00): 09:00 local
        // is 08:00Z before the switch and 07:00Z after it.
        assert!(!t.contains(ms("2024-03-29T07:59:59Z")));
        assert!(t.contains(ms("2024-03-29T08:00:00Z")));
        assert!(t.contains(ms("2024-03-29T15:59:59Z")));
        assert!(!t.contains(ms("2024-03-29T16:00:00Z")));
        assert!(!t.contains(ms("2024-04-02T06:59:59Z")));
        assert!(t.contains(ms("2024-04-02T07:00:00Z")));
        assert!(t.contains(ms("2024-04-02T14:59:59Z")));
        assert!(!t.contains(ms("2024-04-02T15:00:00Z")));
        // The night of the switch: 01:00–04:00 local covers only two real hours in spring
        // (02:00–03:00 never happens) and four in autumn (02:00–03:00 happens twice).
        let night =
            spec("times: [{start_time: '01:00', end_time: '04:00'}]\nlocation: 'Europe/Berlin'\n");
        let minutes_inside = |from: &str| {
            let start = ms(from);
            (0..24 * 60)
                .filter(|m| night.contains(start + m * 60_000))
                .count()
        };
        assert_eq!(minutes_inside("2024-03-30T12:00:00Z"), 120);
        assert_eq!(minutes_inside("2024-10-26T12:00:00Z"), 240);
        assert_eq!(minutes_inside("2024-06-01T12:00:00Z"), 180);
        // New York, across its November switch.
        let ny = spec(
            "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\nlocation: America/New_York\n",
        );
        assert!(ny.contains(ms("2024-11-01T13:00:00Z"))); // Fri 09:00 EDT
        assert!(!ny.contains(ms("2024-11-04T13:00:00Z"))); // Mon 08:00 EST
        assert!(ny.contains(ms("2024-11-04T14:00:00Z"))); // Mon 09:00 EST
    }

    #[test]
    fn business_hours() {
        let t = spec(
            "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\n",
        );
        // 2024-01-01 was a Monday.
        assert!(t.contains(ms("2024-01-01T09:00:00Z")));
        assert!(t.contains(ms("2024-01-05T16:59:59Z")));
        assert!(!t.contains(ms("2024-01-01T17:00:00Z")));
        assert!(!t.contains(ms("2024-01-06T12:00:00Z"))); // Saturday
        assert!(!t.contains(ms("2024-01-01T08:59:00Z")));
    }

    #[test]
    fn days_months_years_and_offsets() {
        let t = spec("days_of_month: ['-1']\nmonths: ['february']\nyears: ['2024']\n");
        assert!(t.contains(ms("2024-02-29T10:00:00Z")));
        assert!(!t.contains(ms("2024-02-28T10:00:00Z")));
        assert!(!t.contains(ms("2025-02-28T10:00:00Z")));
        if !tzdata() {
            return;
        }
        let t = spec("times: [{start_time: '00:00', end_time: '01:00'}]\nlocation: 'Etc/GMT-2'\n");
        assert!(t.contains(ms("2024-01-01T22:30:00Z")));
        assert!(!t.contains(ms("2024-01-01T00:30:00Z")));
        let t = spec("times: [{start_time: '22:00', end_time: '24:00'}]\nlocation: 'Etc/GMT+2'\n");
        assert!(t.contains(ms("2024-01-02T00:30:00Z")));
        let t = spec("months: ['1:3']\n");
        assert!(t.contains(ms("2024-03-31T23:59:00Z")));
        assert!(!t.contains(ms("2024-04-01T00:00:00Z")));
    }

    #[test]
    fn rejects_bad_specs() {
        for y in [
            "times: [{start_time: '9:00', end_time: '17:00'}]",
            "times: [{start_time: '18:00', end_time: '17:00'}]",
            "weekdays: ['friday:monday']",
            "weekdays: ['funday']",
            "days_of_month: ['0']",
            "months: ['smarch']",
            "location: '+02:00'",
            "location: 'Europe/Atlantis'",
            "location: '../../etc/passwd'",
        ] {
            let s: TimeIntervalSpec = serde_saphyr::from_str(y).unwrap();
            assert!(s.build().is_err(), "{y}");
        }
    }
}
