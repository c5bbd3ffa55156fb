//! Preemption for the ptrace platform: a host thread that interrupts a stub
//! thread which has run in user mode for a whole time slice, so that a task
//! spinning in user mode cannot starve the others. A task that traps often
//! (a syscall loop that never blocks) makes many short switches, none of
//! which outlives a slice: the sentry's scheduler preempts that one itself
//! (`guest_kernel::kernel::SLICE_NS`).

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
    /// Host signals queued and taken by the sentry: while they differ, the
    /// ticker kicks the running stub again each slice, so a kick that found
    /// no stub running (the tracer was between two switches) is not lost
    /// for a task that never traps otherwise.
    signals_sent: AtomicU64,
    signals_taken: AtomicU64,
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

    /// The sentry took a host signal.
    pub fn signal_taken(&self) {
        self.signals_taken.fetch_add(1, Ordering::SeqCst);
    }

    fn signals_pending(&self) -> bool {
        self.signals_sent.load(Ordering::SeqCst) != self.signals_taken.load(Ordering::SeqCst)
    }

    /// Interrupt whatever stub thread is running now, if any.
    pub fn kick(&self) {
        let ids = self.ids.load(Ordering::Acquire);
        if ids != 0 {
            // SAFETY: as in the ticker: only a signal to a stub thread of ours.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    (ids >> 32) as i32,
                    ids as u32 as i32,
                    libc::SIGURG,
                )
            };
        }
    }
}

/// Signals from outside the sandbox, waiting for the sentry.
#[derive(Default)]
pub struct HostSignals {
    queue: std::sync::Mutex<std::collections::VecDeque<guest_kernel::platform::HostSignal>>,
    wake: std::sync::Condvar,
    /// Processes to start (`exec`), and who hears of their exits.
    execs: std::sync::Mutex<std::collections::VecDeque<guest_kernel::ExecRequest>>,
    on_exit: std::sync::Mutex<Option<ExitHandler>>,
}

/// Called with (exec id, exit code) when an `exec`'d process ends.
pub type ExitHandler = Box<dyn Fn(u32, i32) + Send>;

impl std::fmt::Debug for HostSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSignals")
    }
}

/// A handle that other threads of the sandbox process use to signal the
/// container (the control server, the host-signal forwarder).
#[derive(Clone, Debug)]
pub struct SignalSender {
    signals: Arc<HostSignals>,
    running: Arc<Running>,
}

impl SignalSender {
    pub(crate) fn new(signals: Arc<HostSignals>, running: Arc<Running>) -> Self {
        SignalSender { signals, running }
    }

    /// Ask the sentry to start a process; `on_exit` hears how it ended.
    pub fn exec(&self, req: guest_kernel::ExecRequest) {
        if let Ok(mut q) = self.signals.execs.lock() {
            q.push_back(req);
            // Counted with the signals, so the ticker keeps kicking until
            // the sentry has taken it.
            self.running.signals_sent.fetch_add(1, Ordering::SeqCst);
        }
        self.signals.wake.notify_all();
        self.running.kick();
    }

    /// Who hears of the exits of `exec`'d processes.
    pub fn set_exit_handler(&self, f: ExitHandler) {
        if let Ok(mut h) = self.signals.on_exit.lock() {
            *h = Some(f);
        }
    }

    /// Queue `sig` for the container and wake the sentry.
    pub fn send(&self, sig: guest_kernel::platform::HostSignal) {
        if let Ok(mut q) = self.signals.queue.lock() {
            q.push_back(sig);
            self.running.signals_sent.fetch_add(1, Ordering::SeqCst);
        }
        self.signals.wake.notify_all();
        self.running.kick();
    }
}

impl HostSignals {
    /// Wake an idle sentry without queueing anything (pause).
    pub fn wake_all(&self) {
        self.wake.notify_all();
    }

    pub fn take_exec(&self) -> Option<guest_kernel::ExecRequest> {
        self.execs.lock().ok()?.pop_front()
    }

    pub fn exited(&self, id: u32, code: i32) {
        if let Ok(h) = self.on_exit.lock() {
            if let Some(f) = h.as_ref() {
                f(id, code);
            }
        }
    }

    pub fn take(&self) -> Option<guest_kernel::platform::HostSignal> {
        self.queue.lock().ok()?.pop_front()
    }

    /// Sleep up to `wait`, or until a signal is queued.
    pub fn wait(&self, wait: std::time::Duration) {
        let Ok(q) = self.queue.lock() else {
            return;
        };
        let execs_waiting = self.execs.lock().map(|e| !e.is_empty()).unwrap_or(false);
        if q.is_empty() && !execs_waiting {
            let _ = self.wake.wait_timeout(q, wait);
        }
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
                if r.signals_pending() {
                    r.kick();
                }
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
