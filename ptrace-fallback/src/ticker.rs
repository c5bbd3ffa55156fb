//! Preemption for the ptrace platform: a host thread that interrupts a stub
//! thread which has run in user mode for a whole time slice, so that a task
//! spinning in user mode cannot starve the others. A task that traps often
//! (a syscall loop that never blocks) makes many short switches, none of
//! which outlives a slice: the sentry's scheduler preempts that one itself
//! (`guest_kernel::kernel::SLICE_NS`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Length of a time slice.
pub const SLICE: Duration = Duration::from_millis(10);

/// What one CPU runs now: `(stub pid << 32) | tid`, or 0; a counter of
/// its switches, so the ticker only interrupts a switch that outlived a
/// slice; and a kick not yet seen.
#[derive(Debug, Default)]
#[repr(align(64))]
struct CpuRun {
    ids: AtomicU64,
    generation: AtomicU64,
    kicked: AtomicBool,
    /// Traps taken: through a sysmsg thread, and as ptrace stops.
    fast_traps: AtomicU64,
    ptrace_traps: AtomicU64,
}

/// What every CPU runs, and the host signals the sentry has not taken yet.
#[derive(Debug)]
pub struct Running {
    cpus: Vec<CpuRun>,
    /// Host signals queued and taken by the sentry: while they differ, the
    /// ticker kicks every CPU again each slice, so a kick that found no
    /// stub running (the tracer was between two switches) is not lost for
    /// a task that never traps otherwise.
    signals_sent: AtomicU64,
    signals_taken: AtomicU64,
}

impl Running {
    pub fn new(cpus: usize) -> Self {
        Running {
            cpus: (0..cpus.max(1)).map(|_| CpuRun::default()).collect(),
            signals_sent: AtomicU64::new(0),
            signals_taken: AtomicU64::new(0),
        }
    }

    pub fn cpus(&self) -> usize {
        self.cpus.len()
    }

    /// CPU `cpu` is about to run stub thread `tid` of stub `pid`; false
    /// (and nothing recorded) if it was kicked since it last looked, so it
    /// goes back to the kernel instead.
    pub fn enter(&self, cpu: usize, pid: i32, tid: i32) -> bool {
        let Some(c) = self.cpus.get(cpu) else {
            return true;
        };
        c.generation.fetch_add(1, Ordering::Relaxed);
        c.ids.store(
            ((pid as u32 as u64) << 32) | tid as u32 as u64,
            Ordering::SeqCst,
        );
        // Paired with `kick_cpu`: either it sees the ids and signals the
        // thread, or we see its flag here.
        if c.kicked.swap(false, Ordering::SeqCst) {
            c.ids.store(0, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub fn leave(&self, cpu: usize) {
        if let Some(c) = self.cpus.get(cpu) {
            c.ids.store(0, Ordering::SeqCst);
        }
    }

    /// Count a trap of `cpu`'s, taken `fast` (through a sysmsg thread) or
    /// as a ptrace stop.
    pub fn count_trap(&self, cpu: usize, fast: bool) {
        if let Some(c) = self.cpus.get(cpu) {
            let n = if fast { &c.fast_traps } else { &c.ptrace_traps };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Traps so far: (through sysmsg threads, as ptrace stops).
    pub fn traps(&self) -> (u64, u64) {
        self.cpus.iter().fold((0, 0), |(f, p), c| {
            (
                f + c.fast_traps.load(Ordering::Relaxed),
                p + c.ptrace_traps.load(Ordering::Relaxed),
            )
        })
    }

    /// Whether `cpu` was kicked since it last looked; clears the kick.
    pub fn take_kick(&self, cpu: usize) -> bool {
        self.cpus
            .get(cpu)
            .is_some_and(|c| c.kicked.swap(false, Ordering::SeqCst))
    }

    /// The sentry took a host signal.
    pub fn signal_taken(&self) {
        self.signals_taken.fetch_add(1, Ordering::SeqCst);
    }

    fn signals_pending(&self) -> bool {
        self.signals_sent.load(Ordering::SeqCst) != self.signals_taken.load(Ordering::SeqCst)
    }

    /// Make `cpu` look at the kernel again: interrupt the stub thread it
    /// runs, if any, and leave a kick that its next switch or idle sees.
    /// The caller wakes it if it idles.
    pub fn kick_cpu(&self, cpu: usize) {
        let Some(c) = self.cpus.get(cpu) else {
            return;
        };
        c.kicked.store(true, Ordering::SeqCst);
        let ids = c.ids.load(Ordering::SeqCst);
        if ids != 0 {
            tgkill_urg(ids);
        }
    }

    /// Kick every CPU.
    pub fn kick(&self) {
        for cpu in 0..self.cpus.len() {
            self.kick_cpu(cpu);
        }
    }
}

/// Interrupt stub thread `ids` (as in [`CpuRun`]) with SIGURG.
fn tgkill_urg(ids: u64) {
    // SAFETY: tgkill only sends a signal; the ids name a stub thread of
    // ours (a stale id at worst hits a stopped stub thread, whose stop its
    // tracer then treats as an interruption).
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            (ids >> 32) as i32,
            ids as u32 as i32,
            libc::SIGURG,
        )
    };
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

    /// Sleep up to `wait` on `cpu`, or until a signal or an `exec` is
    /// queued or the CPU is kicked.
    pub fn wait(&self, cpu: usize, wait: std::time::Duration, running: &Running) {
        let Ok(q) = self.queue.lock() else {
            return;
        };
        let execs_waiting = self.execs.lock().map(|e| !e.is_empty()).unwrap_or(false);
        if q.is_empty() && !execs_waiting && !running.take_kick(cpu) {
            let _ = self.wake.wait_timeout(q, wait);
            running.take_kick(cpu);
        }
    }

    /// Wake the idle CPUs, so that each looks at its kick. Taking the lock
    /// orders this after a waiter's check of its kick.
    pub fn wake_idle(&self) {
        drop(self.queue.lock());
        self.wake.notify_all();
    }
}

/// Start the ticker thread; it ends when the platform drops `running`.
pub fn start(running: &Arc<Running>) -> std::io::Result<()> {
    let weak = Arc::downgrade(running);
    let mut last = vec![(0u64, 0u64); running.cpus()];
    std::thread::Builder::new()
        .name("rf-ptrace-tick".into())
        .spawn(move || loop {
            std::thread::sleep(SLICE);
            let Some(r) = weak.upgrade() else {
                return;
            };
            if r.signals_pending() {
                r.kick();
            }
            for (c, last) in r.cpus.iter().zip(last.iter_mut()) {
                let now = (
                    c.ids.load(Ordering::Acquire),
                    c.generation.load(Ordering::Relaxed),
                );
                // The same switch as a slice ago: preempt it.
                if now.0 != 0 && now == *last {
                    tgkill_urg(now.0);
                }
                *last = now;
            }
        })?;
    Ok(())
}
