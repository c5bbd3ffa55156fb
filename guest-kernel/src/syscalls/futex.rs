//! futex(2). With one thread, a wait can only time out and a wake finds no one.

use super::{arg_i32, Args};
use crate::abi::linux::Timespec;
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::{Clock, Platform};

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

/// futex(2).
pub fn sys_futex<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (uaddr, op, val) = (a[0], arg_i32(a[1]), a[2] as u32);
    if uaddr % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if cmd == FUTEX_WAIT_BITSET && a[5] as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            let mut b = [0u8; 4];
            k.copy_in(uaddr, &mut b)?;
            if u32::from_le_bytes(b) != val {
                return Err(Errno::EAGAIN);
            }
            let deadline = if a[3] == 0 {
                None
            } else {
                let mut t = [0u8; 16];
                k.copy_in(a[3], &mut t)?;
                let ns = Timespec::from_bytes(&t).to_ns().ok_or(Errno::EINVAL)?;
                let now = k.plat.now(Clock::Monotonic);
                Some(if cmd == FUTEX_WAIT {
                    now.saturating_add(ns)
                } else if op & FUTEX_CLOCK_REALTIME != 0 {
                    now.saturating_add(ns.saturating_sub(k.plat.now(Clock::Realtime)))
                } else {
                    ns
                })
            };
            // No other thread exists to wake us: only the timeout ends the wait.
            loop {
                k.plat.idle(deadline);
                if let Some(d) = deadline {
                    if k.plat.now(Clock::Monotonic) >= d {
                        return Err(Errno::ETIMEDOUT);
                    }
                }
            }
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            if cmd == FUTEX_WAKE_BITSET && a[5] as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        _ => {
            let _ = arg_i32(a[1]);
            Err(Errno::ENOSYS)
        }
    }
}
