//! signalfd(2), signalfd4(2), and reading a signalfd.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{arg_fd, Args};
use crate::abi::linux::RLIMIT_NOFILE;
use crate::abi::{Errno, KResult};
use crate::fs::signalfd::{record, SignalFd, RECORD_SIZE};
use crate::fs::{File, O_NONBLOCK};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::signal::UNBLOCKABLE;
use crate::task::WaitKey;

const SFD_CLOEXEC: u64 = 0o2000000;
const SFD_NONBLOCK: u64 = 0o4000;

/// signalfd4(2): a new signalfd (`fd` -1), or a new mask for one.
pub fn sys_signalfd4<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (fd, flags) = (arg_fd(a[0]), a[3]);
    if flags & !(SFD_CLOEXEC | SFD_NONBLOCK) != 0 || a[2] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = k.read_u64(a[1])? & !UNBLOCKABLE;
    if fd != -1 {
        let file = k.group().fds.get(fd)?;
        let File::SignalFd(s) = &*file else {
            return Err(Errno::EINVAL);
        };
        s.mask.store(mask, Ordering::Relaxed);
        // Readers and pollers look again with the new mask.
        crate::fs::signalfd::signals_changed();
        k.wake(WaitKey::Poll, usize::MAX);
        return Ok(fd as u64);
    }
    let file = Arc::new(File::SignalFd(SignalFd::new(
        mask,
        flags as u32 & O_NONBLOCK,
    )));
    let limit = k.group().rlimits[RLIMIT_NOFILE as usize].0;
    Ok(k.group_mut()
        .fds
        .install(file, flags & SFD_CLOEXEC != 0, limit)? as u64)
}

/// signalfd(2): signalfd4 without flags.
pub fn sys_signalfd<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_signalfd4(k, [a[0], a[1], a[2], 0, 0, 0])
}

/// read(2) of a signalfd: as many records as fit, waiting for the first.
pub fn read<P: Platform>(k: &mut Kernel<'_, P>, s: &SignalFd, buf: u64, len: u64) -> KResult<u64> {
    let max = len as usize / RECORD_SIZE;
    if max == 0 {
        return Err(Errno::EINVAL);
    }
    let mask = s.mask();
    let mut out = Vec::new();
    while out.len() < max * RECORD_SIZE {
        let Some(info) = crate::task::frame::dequeue_signal(k, mask) else {
            break;
        };
        out.extend_from_slice(&record(&info));
    }
    if !out.is_empty() {
        k.copy_out(buf, &out)?;
        return Ok(out.len() as u64);
    }
    if s.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0 {
        return Err(Errno::EAGAIN);
    }
    // Like sigwaitinfo: a signal of the mask wakes the reader even while
    // blocked (a handled signal that interrupts ends it by the restart rules).
    let e = k.block(WaitKey::Signal, None);
    k.cur_mut().sigwait = mask;
    Err(e)
}
