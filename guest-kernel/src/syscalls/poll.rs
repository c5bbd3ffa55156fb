//! poll(2), ppoll(2).
//!
//! Readiness comes from the files themselves; a poller that must wait
//! blocks on `WaitKey::Poll`, which every pipe event also wakes.

use alloc::vec;

use super::{arg_i32, Args};
use crate::abi::linux::Timespec;
use crate::abi::{Errno, KResult};
use crate::fs::File;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::WaitKey;

const POLLIN: u16 = 0x1;
const POLLPRI: u16 = 0x2;
const POLLOUT: u16 = 0x4;
const POLLERR: u16 = 0x8;
const POLLHUP: u16 = 0x10;
const POLLNVAL: u16 = 0x20;
const POLLRDNORM: u16 = 0x40;
const POLLWRNORM: u16 = 0x100;

/// The events `file` can report now.
fn readiness(file: &File) -> u16 {
    match file {
        File::Pipe(end) => {
            let (buffered, peers) = end.pipe.status(end.write);
            if end.write {
                if peers == 0 {
                    POLLERR | POLLOUT | POLLWRNORM
                } else if buffered < crate::fs::pipe::PIPE_CAPACITY {
                    POLLOUT | POLLWRNORM
                } else {
                    0
                }
            } else {
                let mut ev = if buffered > 0 { POLLIN | POLLRDNORM } else { 0 };
                if peers == 0 {
                    ev |= POLLHUP;
                }
                ev
            }
        }
        // Host streams and files, and devices: reads and writes do not block
        // in the sentry (a host read waits in the host).
        _ => POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM,
    }
}

fn do_poll<P: Platform>(
    k: &mut Kernel<'_, P>,
    fds: u64,
    nfds: u64,
    deadline: Option<u64>,
) -> KResult<u64> {
    let limit = k.group().rlimits[crate::abi::linux::RLIMIT_NOFILE as usize].0;
    if nfds > limit.max(1024) {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds as usize * 8];
    k.copy_in(fds, &mut raw)?;
    let mut ready = 0u64;
    for entry in raw.chunks_exact_mut(8) {
        let fd = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let events = u16::from_le_bytes([entry[4], entry[5]]);
        let revents = if fd < 0 {
            0
        } else {
            match k.group().fds.get(fd) {
                Ok(f) => readiness(&f) & (events | POLLERR | POLLHUP),
                Err(_) => POLLNVAL,
            }
        };
        let _ = POLLPRI;
        entry[6..8].copy_from_slice(&revents.to_le_bytes());
        if revents != 0 {
            ready += 1;
        }
    }
    if ready > 0 || deadline == Some(0) || k.timed_out() {
        k.copy_out(fds, &raw)?;
        return Ok(ready);
    }
    if matches!(k.cur().restart, Some(r) if r.interrupted) {
        return Err(Errno::EINTR);
    }
    Err(k.block(WaitKey::Poll, deadline))
}

/// poll(2).
pub fn sys_poll<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let timeout_ms = arg_i32(a[2]);
    let deadline = match timeout_ms {
        t if t < 0 => None,
        0 => Some(0),
        t => Some(k.deadline_after(t as u64 * 1_000_000)),
    };
    do_poll(k, a[0], a[1], deadline)
}

/// ppoll(2): the signal mask applies while waiting.
pub fn sys_ppoll<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let deadline = if a[2] == 0 {
        None
    } else {
        let mut b = [0u8; 16];
        k.copy_in(a[2], &mut b)?;
        let ns = Timespec::from_bytes(&b).to_ns().ok_or(Errno::EINVAL)?;
        if ns == 0 {
            Some(0)
        } else {
            Some(k.deadline_after(ns))
        }
    };
    if a[3] != 0 {
        if a[4] != 8 {
            return Err(Errno::EINVAL);
        }
        let mask = k.read_u64(a[3])?;
        let t = k.cur_mut();
        let saved = t
            .restart
            .and_then(|r| r.saved_mask)
            .unwrap_or(t.sig.blocked);
        t.sig.set_blocked(mask);
        let r = do_poll(k, a[0], a[1], deadline);
        if r == Err(crate::kernel::BLOCKED) {
            if let Some(rs) = k.cur_mut().restart.as_mut() {
                rs.saved_mask = Some(saved);
            }
        } else {
            k.cur_mut().sig.set_blocked(saved);
        }
        return r;
    }
    do_poll(k, a[0], a[1], deadline)
}
