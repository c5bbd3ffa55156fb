//! The TSC for the sentry's vDSO on the ptrace platform.
//!
//! The application reads the TSC with `rdtsc` in its stub process (host
//! user mode, where it is allowed unless CR4.TSD is set; the stubs run on
//! the tracer's CPU anyway). Its rate is measured once against the host's
//! `CLOCK_MONOTONIC`, the clock [`Platform::now`] reads: a first reading
//! when the platform is created, a second when the sentry first asks
//! (after at least [`MIN_INTERVAL`], waiting for the rest if need be).
//! Each reading brackets `clock_gettime` between two `rdtsc`s and keeps
//! the tightest of a few tries, so the rate comes out within about 1 ppm
//! on these machines.
//!
//! [`Platform::now`]: guest_kernel::platform::Platform::now

use std::sync::OnceLock;
use std::time::Duration;

use guest_kernel::platform::TscClock;
use nix::time::{clock_gettime, ClockId};

/// The shortest calibration interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(2);
/// Tries per reading.
const TRIES: usize = 5;

/// One reading: the TSC and both clocks at (about) the same instant.
#[derive(Clone, Copy, Debug)]
struct Reading {
    tsc: u64,
    mono_ns: u64,
    real_ns: u64,
}

fn ns(id: ClockId) -> Option<u64> {
    let t = clock_gettime(id).ok()?;
    Some(u64::try_from(t.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(t.tv_nsec()).ok()?)
}

fn rdtsc() -> u64 {
    // SAFETY: `lfence; rdtsc` reads the time-stamp counter; it touches no
    // memory. (CPUID said the TSC exists before any reading is taken.)
    unsafe {
        core::arch::x86_64::_mm_lfence();
        core::arch::x86_64::_rdtsc()
    }
}

/// The TSC exists and is invariant (CPUID 0x80000007 EDX bit 8).
fn invariant_tsc() -> bool {
    use core::arch::x86_64::__cpuid;
    // `cpuid` is unprivileged and has no side effects.
    #[allow(unused_unsafe)]
    // SAFETY: as above (the intrinsic is `unsafe` on older compilers).
    let (max_ext, basic) = unsafe { (__cpuid(0x8000_0000).eax, __cpuid(1).edx) };
    if basic & (1 << 4) == 0 || max_ext < 0x8000_0007 {
        return false;
    }
    #[allow(unused_unsafe)]
    // SAFETY: as above.
    let pm = unsafe { __cpuid(0x8000_0007) };
    pm.edx & (1 << 8) != 0
}

fn reading() -> Option<Reading> {
    let mut best: Option<(u64, Reading)> = None;
    for _ in 0..TRIES {
        let t0 = rdtsc();
        let mono_ns = ns(ClockId::CLOCK_MONOTONIC)?;
        let real_ns = ns(ClockId::CLOCK_REALTIME)?;
        let t1 = rdtsc();
        let width = t1.wrapping_sub(t0);
        if t1 < t0 {
            continue;
        }
        let r = Reading {
            tsc: t0 + width / 2,
            mono_ns,
            real_ns,
        };
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, r));
        }
    }
    best.map(|(_, r)| r)
}

/// A first reading taken as the process starts (`prime`), so that by the
/// time the sentry first asks, the interval has mostly passed already.
static EARLY: OnceLock<Option<Reading>> = OnceLock::new();

/// Take the first calibration reading now, at the start of the process:
/// a platform created later measures from it instead of waiting
/// [`MIN_INTERVAL`] from its own creation (about 2 ms of every ptrace
/// sandbox's start-up).
pub fn prime() {
    EARLY.get_or_init(first_reading);
}

fn first_reading() -> Option<Reading> {
    if invariant_tsc() {
        reading()
    } else {
        None
    }
}

/// The calibration of one platform.
#[derive(Debug)]
pub struct TscCalibration {
    first: Option<Reading>,
    result: OnceLock<Option<TscClock>>,
}

impl TscCalibration {
    /// Takes the first reading (none if the TSC is not invariant), or
    /// uses the one [`prime`] took.
    pub fn start() -> TscCalibration {
        TscCalibration {
            first: EARLY.get().copied().unwrap_or_else(first_reading),
            result: OnceLock::new(),
        }
    }

    /// The clock, measured on the first call.
    pub fn clock(&self) -> Option<TscClock> {
        *self.result.get_or_init(|| self.finish())
    }

    fn finish(&self) -> Option<TscClock> {
        let first = self.first?;
        let mono = ns(ClockId::CLOCK_MONOTONIC)?;
        let waited = Duration::from_nanos(mono.saturating_sub(first.mono_ns));
        if waited < MIN_INTERVAL {
            std::thread::sleep(MIN_INTERVAL - waited);
        }
        let last = reading()?;
        let ticks = last.tsc.checked_sub(first.tsc)?;
        let elapsed = last.mono_ns.checked_sub(first.mono_ns)?;
        if elapsed == 0 || ticks == 0 {
            return None;
        }
        let hz = u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(elapsed)).ok()?;
        log::debug!(
            "TSC calibrated over {:.2} ms: {hz} Hz",
            elapsed as f64 / 1e6
        );
        Some(TscClock {
            tsc_hz: hz,
            tsc_base: last.tsc,
            mono_base_ns: last.mono_ns,
            realtime_base_ns: last.real_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_follows_the_host_clock() {
        let cal = TscCalibration::start();
        let Some(c) = cal.clock() else {
            eprintln!("SKIPPED: no invariant TSC here");
            return;
        };
        assert!(c.tsc_hz > 100_000_000, "{} Hz", c.tsc_hz);
        // 50 ms later, the TSC-derived clock is within 50 µs of the host's.
        std::thread::sleep(Duration::from_millis(50));
        let r = reading().expect("reading");
        let predicted = c.mono_base_ns
            + u64::try_from(u128::from(r.tsc - c.tsc_base) * 1_000_000_000 / u128::from(c.tsc_hz))
                .unwrap();
        let diff = predicted.abs_diff(r.mono_ns);
        assert!(diff < 50_000, "off by {diff} ns after 50 ms");
        // The same answer every time.
        assert_eq!(cal.clock(), Some(c));
    }
}
