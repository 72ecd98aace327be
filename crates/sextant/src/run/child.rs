//! Runs the wrapped command the way a shell would, so `sextant run -- CMD` can replace `CMD`
//! in any script: stdio inherited, exit status passed through (a signal N becomes 128+N),
//! 127/126 when the command cannot be found or executed, and SIGINT/SIGTERM sent to
//! `sextant` forwarded to the child. The child is reaped with `wait4`, which also returns its
//! resource usage (peak RSS, user and system CPU of the child and the descendants it waited
//! for).

use std::io::ErrorKind;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

/// How the command ended and what it used.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The exit code a shell would report (0–255; 128+N for signal N; 127/126 if not started).
    pub exit_code: i32,
    /// The signal that killed the child, if any.
    pub signal: Option<i32>,
    pub peak_rss_bytes: u64,
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    /// Why the command could not be started, if it was not.
    pub spawn_error: Option<String>,
}

/// PID of the running child for the signal handler (0: none). A signal handler can only
/// reach process-wide state, so this one atomic is the exception to "no global state".
static CHILD_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // A terminal's Ctrl-C already reaches the child (same process group): the kernel sends
    // it with si_code SI_KERNEL (> 0). Forward only signals sent by a process (kill(1),
    // a CI runner cancelling the job: si_code <= 0), so the child does not get Ctrl-C twice.
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let code = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_code }
    };
    let pid = CHILD_PID.load(Ordering::SeqCst);
    if pid > 0 && code <= 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn install_forwarding() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a valid handler and SA_SIGINFO is a valid
        // argument; the handler only reads an atomic and calls kill.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn tv_seconds(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// Runs `argv` (non-empty) to completion.
pub fn run(argv: &[String]) -> Outcome {
    let not_started = |code: i32, msg: String| Outcome {
        exit_code: code,
        signal: None,
        peak_rss_bytes: 0,
        cpu_user_seconds: 0.0,
        cpu_system_seconds: 0.0,
        spawn_error: Some(msg),
    };
    let Some((prog, args)) = argv.split_first() else {
        return not_started(127, "no command given".into());
    };
    install_forwarding();
    let child = match Command::new(prog).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            // Like a shell: 127 "command not found", 126 found but not executable.
            let code = if e.kind() == ErrorKind::NotFound {
                127
            } else {
                126
            };
            let what = if code == 127 {
                "command not found".to_string()
            } else {
                e.to_string()
            };
            return not_started(code, format!("{prog}: {what}"));
        }
    };
    let pid = child.id() as libc::pid_t;
    CHILD_PID.store(pid, Ordering::SeqCst);
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is valid; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child; status and ru point to valid memory.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if r < 0 && err.kind() == ErrorKind::Interrupted {
            continue;
        }
        CHILD_PID.store(0, Ordering::SeqCst);
        return not_started(
            126,
            format!("{prog}: waiting for the command failed: {err}"),
        );
    }
    CHILD_PID.store(0, Ordering::SeqCst);
    // The std handle must not wait again (the child is reaped); dropping it does not.
    drop(child);
    let (exit_code, signal) = if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        (128 + s, Some(s))
    } else {
        (1, None)
    };
    Outcome {
        exit_code,
        signal,
        // Linux reports ru_maxrss in KiB.
        peak_rss_bytes: (ru.ru_maxrss.max(0) as u64).saturating_mul(1024),
        cpu_user_seconds: tv_seconds(ru.ru_utime),
        cpu_system_seconds: tv_seconds(ru.ru_stime),
        spawn_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Outcome {
        run(&["sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn exit_codes_like_a_shell() {
        assert_eq!(sh("exit 0").exit_code, 0);
        assert_eq!(sh("exit 3").exit_code, 3);
        let o = sh("kill -9 $$");
        assert_eq!((o.exit_code, o.signal), (137, Some(9)));
        let o = run(&["/nonexistent/cmd-xyz".into()]);
        assert_eq!(o.exit_code, 127);
        assert!(o.spawn_error.unwrap().contains("command not found"));
        let o = run(&["/dev/null".into()]);
        assert_eq!(o.exit_code, 126, "{:?}", o.spawn_error);
    }

    #[test]
    fn measures_the_child() {
        // 64 MiB touched by the child must show in its peak RSS; busy-looping costs CPU.
        let o = run(&[
            "python3".into(),
            "-c".into(),
            "b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nx = 0\nfor i in range(2000000): x += i".into(),
        ]);
        if o.spawn_error.is_some() {
            eprintln!("SKIPPED: python3 not available");
            return;
        }
        assert_eq!(o.exit_code, 0);
        assert!(o.peak_rss_bytes >= 64 << 20, "{o:?}");
        assert!(o.cpu_user_seconds > 0.0, "{o:?}");
    }
}
