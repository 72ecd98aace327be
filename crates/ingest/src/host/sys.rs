//! The few system calls the host collector needs that /proc does not answer: `statfs` for
//! filesystem sizes, `uname`, the clock tick and page size, the local time zone and the calling
//! thread's CPU time (to measure what a collection costs). Thin safe wrappers over `libc`.

use std::ffi::{CStr, CString};

/// Sizes of one filesystem as `statfs(2)` reports them, already multiplied by the block size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsStats {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

/// `statfs(2)` of `path`.
pub fn statfs(path: &str) -> std::io::Result<FsStats> {
    let c =
        CString::new(path).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `s` is plain old data that statfs fills; `c` is a valid NUL-terminated path.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let bsize = s.f_bsize as f64;
    Ok(FsStats {
        size: s.f_blocks as f64 * bsize,
        free: s.f_bfree as f64 * bsize,
        avail: s.f_bavail as f64 * bsize,
        files: s.f_files as f64,
        files_free: s.f_ffree as f64,
    })
}

/// The fields of `uname(2)` that node_uname_info carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

fn field(f: &[libc::c_char]) -> String {
    // SAFETY: uname fills NUL-terminated strings within the array; guard with a bounded search.
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn uname() -> Option<Uname> {
    // SAFETY: utsname is plain old data that uname fills.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    Some(Uname {
        sysname: field(&u.sysname),
        nodename: field(&u.nodename),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
        domainname: field(&u.domainname),
    })
}

/// Clock ticks per second (USER_HZ) for /proc times; 100 if sysconf fails.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as f64
    } else {
        100.0
    }
}

/// Page size in bytes; 4096 if sysconf fails.
pub fn page_size() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as f64
    } else {
        4096.0
    }
}

/// The local time zone's abbreviation and offset from UTC in seconds, at `unix_secs`.
pub fn time_zone(unix_secs: i64) -> Option<(String, f64)> {
    let t: libc::time_t = unix_secs as libc::time_t;
    // SAFETY: localtime_r writes into `tm`; tm_zone points into static tz data or is null.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Some((zone, tm.tm_gmtoff as f64))
}

/// CPU time (user + system) the calling thread has used, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime writes into `ts`.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The kernel clock's discipline state from `adjtimex(2)` in read-only mode (modes = 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timex {
    /// adjtimex's return value: the clock state (5 = TIME_ERROR, not synchronized).
    pub state: i32,
    pub offset: f64,
    pub freq: f64,
    pub maxerror: f64,
    pub esterror: f64,
    pub status: f64,
    pub constant: f64,
    pub tick: f64,
    pub ppsfreq: f64,
    pub jitter: f64,
    pub shift: f64,
    pub stabil: f64,
    pub jitcnt: f64,
    pub calcnt: f64,
    pub errcnt: f64,
    pub stbcnt: f64,
    pub tai: f64,
}

pub fn timex() -> Option<Timex> {
    // SAFETY: timex is plain old data; with modes = 0 adjtimex only reads the clock state.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return None;
    }
    Some(Timex {
        state,
        offset: t.offset as f64,
        freq: t.freq as f64,
        maxerror: t.maxerror as f64,
        esterror: t.esterror as f64,
        status: t.status as f64,
        constant: t.constant as f64,
        tick: t.tick as f64,
        ppsfreq: t.ppsfreq as f64,
        jitter: t.jitter as f64,
        shift: t.shift as f64,
        stabil: t.stabil as f64,
        jitcnt: t.jitcnt as f64,
        calcnt: t.calcnt as f64,
        errcnt: t.errcnt as f64,
        stbcnt: t.stbcnt as f64,
        tai: t.tai as f64,
    })
}
