//! Signal names and numbers as runc's `kill` takes them, what a signal
//! does by default, and the host signals a sandbox process forwards.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The highest signal number (`SIGRTMAX` on x86-64 Linux).
pub const SIGRTMAX: i32 = 64;
/// The lowest real-time signal the C library lets applications use.
pub const SIGRTMIN: i32 = 34;

/// Linux x86-64 signal names without the `SIG` prefix, with aliases.
const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// A signal that `kill` cannot send.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid signal {0:?}: use a name such as TERM, SIGKILL or RTMIN+1, or a number from 0 to 64"
)]
pub struct BadSignal(pub String);

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+2`, `SIGRTMAX-1`...
/// into a signal number in `0..=64` (0 only probes the container).
pub fn parse(raw: &str) -> Result<i32, BadSignal> {
    let bad = || BadSignal(raw.to_string());
    let s = raw.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (0..=SIGRTMAX).contains(&n).then_some(n).ok_or_else(bad);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, BadSignal> {
        let off = rest.parse::<i32>().map_err(|_| bad())?;
        let n = base + sign * off;
        (SIGRTMIN..=SIGRTMAX)
            .contains(&n)
            .then_some(n)
            .ok_or_else(bad)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return match rest.strip_prefix('+') {
            Some(r) => rt(SIGRTMIN, r, 1),
            None if rest.is_empty() => Ok(SIGRTMIN),
            None => Err(bad()),
        };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return match rest.strip_prefix('-') {
            Some(r) => rt(SIGRTMAX, r, -1),
            None if rest.is_empty() => Ok(SIGRTMAX),
            None => Err(bad()),
        };
    }
    Err(bad())
}

/// What a signal does to a process that has no handler for it (signal(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Terminate (or dump core): the process ends with 128+N.
    Terminate,
    /// Nothing happens.
    Ignore,
    /// The process stops until SIGCONT.
    Stop,
}

/// The default action of signal `n` (1..=64).
pub fn default_action(n: i32) -> DefaultAction {
    match n {
        17 | 18 | 23 | 28 => DefaultAction::Ignore,
        19..=22 => DefaultAction::Stop,
        _ => DefaultAction::Terminate,
    }
}

/// Host signals that a sandbox process forwards to its container instead
/// of dying of them.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Blocks [`FORWARDED`] in the calling thread (and so in every thread it
/// starts later) and returns a non-blocking signalfd that receives them.
/// Call it before any other thread exists, or a thread with the signals
/// unblocked would take them with their default action.
pub fn forwarded_signalfd() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for (s, n) in [
            ("TERM", 15),
            ("SIGTERM", 15),
            ("sigkill", 9),
            ("Kill", 9),
            ("9", 9),
            ("0", 0),
            ("64", 64),
            ("RTMIN", 34),
            ("SIGRTMIN+3", 37),
            ("RTMAX-1", 63),
            ("RTMAX", 64),
            ("CLD", 17),
            ("SIGWINCH", 28),
        ] {
            assert_eq!(parse(s).ok(), Some(n), "{s}");
        }
        for s in [
            "",
            "65",
            "-1",
            "SIG",
            "FOO",
            "RTMIN+40",
            "RTMAX-31",
            "RTMIN-1",
            "RTMINX",
            "RTMIN+",
            "1.5",
            "99999999999",
        ] {
            assert!(parse(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn default_actions() {
        assert_eq!(default_action(15), DefaultAction::Terminate);
        assert_eq!(default_action(9), DefaultAction::Terminate);
        assert_eq!(default_action(28), DefaultAction::Ignore);
        assert_eq!(default_action(17), DefaultAction::Ignore);
        assert_eq!(default_action(19), DefaultAction::Stop);
        assert_eq!(default_action(40), DefaultAction::Terminate);
    }
}
