//! A task's FPU state, kept by the sentry between runs.
//!
//! Stub threads are shared: each CPU runs every task of an address space
//! on its own stub thread of that space, so a task's x87/SSE/AVX state
//! cannot live in a host thread for good. While the task runs on one CPU
//! (the scheduler's `run_task`), its newest state stays in the stub thread
//! it ran on (`resident`); it is saved (`PTRACE_GETREGSET`, `NT_X86_XSTATE`,
//! the whole user XSAVE area) when the task leaves the CPU
//! (`Platform::unload_thread`) or moves to another stub thread, since no
//! other CPU can read a thread it does not trace. It is loaded into a stub
//! thread before a switch unless that thread holds it already (a CPU
//! remembers which state each of its stub threads holds).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use guest_kernel::platform::PlatformError;
use nix::unistd::Pid;

use crate::sysmsg::Slot;

/// `NT_X86_XSTATE`.
const NT_X86_XSTATE: libc::c_int = 0x202;
/// Where the XSAVE header's `xstate_bv` sits.
const XSTATE_BV: usize = 512;
/// x87 and SSE: the components of the legacy area.
const LEGACY_COMPONENTS: u64 = 3;
/// The size of the host's user XSAVE area, learnt from the first stub.
static XSTATE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// Entries of a CPU's `LOADED` beyond which it starts afresh (the tids of
/// dead stubs would pile up otherwise; a lost entry costs one reload).
const LOADED_MAX: usize = 4096;
/// Tags of FPU contents, unique in the process.
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Which tag each stub thread traced by this CPU holds.
    static LOADED: RefCell<HashMap<i32, u64>> = RefCell::new(HashMap::new());
}

fn next_tag() -> u64 {
    NEXT_TAG.fetch_add(1, Ordering::Relaxed)
}

fn loaded(tid: Pid) -> Option<u64> {
    LOADED.with(|l| l.borrow().get(&tid.as_raw()).copied())
}

fn set_loaded(tid: Pid, tag: u64) {
    LOADED.with(|l| {
        let mut l = l.borrow_mut();
        if l.len() >= LOADED_MAX {
            l.clear();
        }
        l.insert(tid.as_raw(), tag);
    });
}

/// A task's saved registers beyond the general ones: its FPU state.
#[derive(Debug)]
pub struct StubThread {
    /// The XSAVE image; empty until first saved (the initial state).
    xstate: Vec<u8>,
    /// Names the contents of `xstate`: changes whenever they change.
    tag: u64,
    /// Where a newer state than `xstate` is: the stub thread the task last
    /// ran on (traced by that CPU), or the signal frame of a sysmsg slot.
    resident: Option<Home>,
}

/// Where a task's newest FPU state lives while it runs on one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Home {
    Traced(Pid),
    Frame(Pid, Slot),
}

impl Default for StubThread {
    fn default() -> Self {
        StubThread {
            xstate: Vec::new(),
            tag: next_tag(),
            resident: None,
        }
    }
}

/// The initial XSAVE image (as after `execve`): x87 control word 0x37f,
/// MXCSR 0x1f80, everything else in its initial state.
fn initial(size: usize) -> Vec<u8> {
    let mut x = vec![0u8; size.max(XSTATE_BV + 64)];
    x[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
    x[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    x[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&LEGACY_COMPONENTS.to_le_bytes());
    x
}

/// `PTRACE_GETREGSET`/`SETREGSET` of `NT_X86_XSTATE` on `tid` with `buf`;
/// the bytes transferred.
fn regset(req: libc::c_uint, tid: Pid, buf: &mut [u8]) -> nix::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the kernel reads or writes at most `iov_len` bytes at
    // `iov_base`, which is `buf`, alive and exclusively borrowed for the
    // call; it updates `iov` itself, which lives on our stack.
    let r = unsafe {
        libc::ptrace(
            req,
            tid.as_raw(),
            NT_X86_XSTATE as usize,
            &mut iov as *mut libc::iovec,
        )
    };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(iov.iov_len)
}

/// Learn the host's XSAVE size from a stopped stub thread (once).
pub fn probe_size(tid: Pid) {
    if XSTATE_SIZE.load(Ordering::Relaxed) != 0 {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    if let Ok(n) = regset(libc::PTRACE_GETREGSET, tid, &mut buf) {
        XSTATE_SIZE.store(n, Ordering::Relaxed);
    }
}

/// Stub thread `tid` is new to this CPU: it holds no task's state.
pub fn forget(tid: Pid) {
    LOADED.with(|l| l.borrow_mut().remove(&tid.as_raw()));
}

fn lost(what: &'static str, e: nix::Error) -> PlatformError {
    PlatformError::Lost(what, e as i32)
}

impl StubThread {
    /// Make stub thread `tid` hold this state, to run the task on it.
    pub fn load(&mut self, tid: Pid) -> Result<(), PlatformError> {
        self.load_into(Home::Traced(tid), |x| {
            regset(libc::PTRACE_SETREGSET, tid, x)
                .map(|_| ())
                .map_err(|e| lost("loading the FPU state", e))
        })
    }

    /// Make the signal frame of sysmsg thread `tid` (in `slot`) hold this
    /// state: `rt_sigreturn` loads it.
    pub fn load_frame(&mut self, tid: Pid, slot: Slot) -> Result<(), PlatformError> {
        if self.resident != Some(Home::Frame(tid, slot)) {
            // Another task ran there, or this one elsewhere: the thread
            // sets the segment bases afresh (the application may have
            // changed its own with wrfsbase, which the handler's cache
            // cannot see).
            slot.forget_segments();
        }
        self.load_into(Home::Frame(tid, slot), |x| slot.write_fpstate(x))
    }

    /// Make `home` hold this state, with `write` unless it holds it already.
    fn load_into(
        &mut self,
        home: Home,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), PlatformError>,
    ) -> Result<(), PlatformError> {
        if self.resident == Some(home) {
            return Ok(());
        }
        let tid = match home {
            Home::Traced(t) | Home::Frame(t, _) => t,
        };
        self.unload();
        if loaded(tid) != Some(self.tag) {
            if self.xstate.is_empty() {
                self.xstate = initial(XSTATE_SIZE.load(Ordering::Relaxed));
            }
            write(&mut self.xstate)?;
            set_loaded(tid, self.tag);
        }
        self.resident = Some(home);
        Ok(())
    }

    /// The newest state of the thread or frame that holds it.
    fn live(home: Home) -> Option<Vec<u8>> {
        match home {
            Home::Traced(tid) => {
                let mut buf = initial(XSTATE_SIZE.load(Ordering::Relaxed));
                let n = regset(libc::PTRACE_GETREGSET, tid, &mut buf).ok()?;
                buf.truncate(n);
                Some(buf)
            }
            // The frame's XSAVE area may be smaller than the regset's (the
            // task's own size); the rest stays in its initial state.
            Home::Frame(_, slot) => {
                let f = slot.read_fpstate()?;
                let mut buf = initial(XSTATE_SIZE.load(Ordering::Relaxed));
                let n = f.len().min(buf.len());
                buf[..n].copy_from_slice(&f[..n]);
                Some(buf)
            }
        }
    }

    /// Bring the newest state home from the stub thread that holds it (one
    /// this CPU traces); the task may then run anywhere.
    pub fn unload(&mut self) {
        let Some(home) = self.resident.take() else {
            return;
        };
        let tid = match home {
            Home::Traced(t) | Home::Frame(t, _) => t,
        };
        // A stub thread that is gone (its space ended) keeps its state:
        // the last one saved stands.
        if let Some(buf) = Self::live(home) {
            self.xstate = buf;
            self.tag = next_tag();
            set_loaded(tid, self.tag);
        }
    }

    /// The x87/SSE state (the 512-byte fxsave image).
    pub fn fpu_state(&self) -> [u8; 512] {
        let mut st = [0u8; 512];
        let live = self.resident.and_then(Self::live).unwrap_or_default();
        let src = if live.is_empty() { &self.xstate } else { &live };
        match src.get(..512) {
            Some(x) => st.copy_from_slice(x),
            None => st.copy_from_slice(&initial(0)[..512]),
        }
        st
    }

    /// Replace the x87/SSE state with `st` (an fxsave image).
    pub fn set_fpu_state(&mut self, st: &[u8; 512]) {
        self.unload();
        if self.xstate.len() < XSTATE_BV + 64 {
            self.xstate = initial(XSTATE_SIZE.load(Ordering::Relaxed));
        }
        self.xstate[..512].copy_from_slice(st);
        // The kernel rejects reserved MXCSR bits; keep only the defined ones.
        let mxcsr = u32::from_le_bytes([st[24], st[25], st[26], st[27]]) & 0xffff;
        self.xstate[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        // Bytes 464.. are software-reserved (the kernel's fx_sw_bytes in a
        // signal frame): never pass them on.
        self.xstate[464..512].fill(0);
        let bv = XSTATE_BV..XSTATE_BV + 8;
        let mut x = [0u8; 8];
        x.copy_from_slice(&self.xstate[bv.clone()]);
        let v = u64::from_le_bytes(x) | LEGACY_COMPONENTS;
        self.xstate[bv].copy_from_slice(&v.to_le_bytes());
        self.tag = next_tag();
    }
}
