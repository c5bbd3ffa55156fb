//! The ring-0 sentry image for the PVM flavour of KVM.
//!
//! Boot: the VMM loads this ELF at GPA 2 MiB (linked at `KERNEL_BASE` +
//! 2 MiB) with paging, GDT, TSS and IDTR already set; `_start` registers the
//! vIF page and calls [`kmain`], which brings up the arch layer and the
//! heap, then runs the sentry (or an arch self-test) on [`PvmPlatform`] and
//! reports the exit status on the `EXIT` port.

#![no_std]
#![no_main]
#![allow(dead_code)]

extern crate alloc;

// The sentry's ABI and platform interface. Until `guest-kernel` builds as
// a dependency of the image, the shared files are included by path.
#[path = "../../src/abi/mod.rs"]
pub mod gk_abi;
#[path = "../../src/abi/hostcall.rs"]
pub mod gk_hostcall;
mod abi {
    pub use crate::gk_abi::*;
    pub use crate::gk_hostcall as hostcall;
}
#[path = "../../src/platform.rs"]
pub mod sentry_platform;
mod sentry {
    pub use crate::sentry_platform as platform;
}

mod arch;
mod console;
mod heap;
mod hostcall;
mod mem;
mod platform;
mod selftest;

use abi::hostcall::{boot_info, port};
use arch::x86_64::{self as x86, pvm};
use platform::PvmPlatform;

const MIB: u64 = 1 << 20;

/// Called by `_start` on the boot stack, with the vIF page registered.
#[no_mangle]
pub extern "C" fn kmain() -> ! {
    let facts = x86::init();

    // Kernel heap right after the image; the sentry's frames after that.
    let heap_start = (facts.image_end + 2 * MIB - 1) & !(2 * MIB - 1);
    let heap_size = (facts.mem_size / 8).clamp(16 * MIB, 256 * MIB);
    let phys_base = heap_start + heap_size;
    if phys_base + 16 * MIB > facts.mem_size {
        console::fatal(format_args!(
            "guest RAM too small: {} MiB",
            facts.mem_size / MIB
        ));
    }
    // SAFETY: the range lies in guest RAM past the image and the fixed low
    // layout, mapped by the direct map, and nothing else uses it.
    unsafe { heap::HEAP.init(x86::phys_to_virt(heap_start), heap_size) };

    let seed = x86::boot_info_read(boot_info::SEED) ^ facts.boot_tsc;
    let platform = PvmPlatform::new(phys_base, facts.mem_size - phys_base, seed);

    let which = x86::boot_info_read(boot_info::SELFTEST);
    let arg = x86::boot_info_read(boot_info::SELFTEST_ARG);
    let status = if which != 0 {
        selftest::run(&platform, which, arg)
    } else {
        run_sentry(&platform, facts.params_len)
    };
    exit(status)
}

/// Run the sentry proper.
fn run_sentry(_platform: &PvmPlatform, _params_len: u64) -> i32 {
    // TODO: `guest_kernel::run(platform, BootParams::decode(blob))` once the
    // sentry core builds as a dependency of the image.
    console::fatal(format_args!(
        "the sentry core is not linked into this image yet"
    ))
}

/// Flush host calls and report `status` to the VMM.
fn exit(status: i32) -> ! {
    hostcall::flush_for_exit();
    loop {
        pvm::outl(port::EXIT, status as u32);
        pvm::halt();
    }
}
