//! The sentry's `log` logger: records go to the VMM through the host-call
//! queue (asynchronously, like stdout writes) and the VMM prints them with
//! its own logger. The boot parameters set the level.

use alloc::string::String;
use core::fmt::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct QueueLogger;

static LOGGER: QueueLogger = QueueLogger;

/// Longest record forwarded (the host rejects longer ones).
const MAX_RECORD: usize = crate::abi::hostcall::queue::LOG_MAX as usize;

impl Log for QueueLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut text = String::new();
        let target = record.target();
        let target = target.strip_prefix("guest_kernel::").unwrap_or(target);
        // Guest monotonic time since boot: the host's own timestamps are
        // taken when the I/O thread gets to the record.
        let us = crate::arch::x86_64::monotonic_ns() / 1000;
        let _ = write!(
            text,
            "[{}.{:06}] [{target}] {}",
            us / 1_000_000,
            us % 1_000_000,
            record.args()
        );
        if text.len() > MAX_RECORD {
            let mut end = MAX_RECORD;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let level = match record.level() {
            Level::Error => 1,
            Level::Warn => 2,
            Level::Info => 3,
            Level::Debug => 4,
            Level::Trace => 5,
        };
        crate::hostcall::log_record(level, text.as_bytes());
    }

    fn flush(&self) {}
}

/// Install the logger with the boot parameters' level (0 off .. 5 trace).
pub fn init(level: u32) {
    let filter = match level {
        0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(filter);
    }
}
