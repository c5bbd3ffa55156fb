//! Preemption for the ptrace platform: a host thread that interrupts a stub
//! thread which has run in user mode for a whole time slice, so that a task
//! spinning in user mode cannot starve the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Length of a time slice.
pub const SLICE: Duration = Duration::from_millis(10);

/// What is running now: `(stub pid << 32) | tid`, or 0; and a counter of
/// switches, so the ticker only interrupts a switch that outlived a slice.
#[derive(Debug, Default)]
pub struct Running {
    ids: AtomicU64,
    generation: AtomicU64,
}

impl Running {
    pub fn enter(&self, pid: i32, tid: i32) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.ids.store(
            ((pid as u32 as u64) << 32) | tid as u32 as u64,
            Ordering::Release,
        );
    }

    pub fn leave(&self) {
        self.ids.store(0, Ordering::Release);
    }
}

/// Start the ticker thread; it ends when the platform drops `running`.
pub fn start(running: &Arc<Running>) -> std::io::Result<()> {
    let weak = Arc::downgrade(running);
    std::thread::Builder::new()
        .name("rf-ptrace-tick".into())
        .spawn(move || {
            let mut last = (0u64, 0u64);
            loop {
                std::thread::sleep(SLICE);
                let Some(r) = weak.upgrade() else {
                    return;
                };
                let now = (
                    r.ids.load(Ordering::Acquire),
                    r.generation.load(Ordering::Relaxed),
                );
                if now.0 != 0 && now == last {
                    let (pid, tid) = ((now.0 >> 32) as i32, now.0 as u32 as i32);
                    // SAFETY: tgkill only sends a signal; the ids name a stub
                    // thread of ours (a stale id at worst hits a stopped stub,
                    // whose stop the tracer then treats as an interruption).
                    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGURG) };
                }
                last = now;
            }
        })?;
    Ok(())
}
