//! The Linux ABI the application sees, and the ABI shared with the host side
//! (register frames, host-call types). Plain data only.

pub mod errno;
pub mod hostcall;
pub mod linux;
pub mod regs;
pub mod sysno;

pub use errno::{Errno, KResult};
pub use regs::UserRegs;

/// Size of a page, the unit of every mapping.
pub const PAGE_SIZE: u64 = 4096;

/// Round `v` down to a page boundary.
pub const fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

/// Round `v` up to a page boundary, or `None` on overflow.
pub const fn page_up(v: u64) -> Option<u64> {
    match v.checked_add(PAGE_SIZE - 1) {
        Some(x) => Some(x & !(PAGE_SIZE - 1)),
        None => None,
    }
}
