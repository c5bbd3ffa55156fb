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

// The sentry core. `crate::abi` names its ABI module.
use guest_kernel::abi;

mod arch;
mod console;
mod heap;
mod hostcall;
mod logger;
mod mem;
mod platform;
mod selftest;
mod signals;
mod smp;

use abi::hostcall::{boot_info, gpa, port};
use arch::x86_64::{self as x86, pvm};
use guest_kernel::{BootParams, ExitStatus};
use platform::PvmPlatform;

const MIB: u64 = 1 << 20;

/// Called by `_start` on vCPU `cpu`'s stack, with its vIF page registered.
#[no_mangle]
pub extern "C" fn kmain(cpu: u64) -> ! {
    if cpu != 0 {
        smp::ap_main(cpu as usize);
    }
    let facts = x86::init();
    smp::arch_ready();

    // Kernel heap right after the image; the sentry's frames after that.
    let heap_start = (facts.image_end + 2 * MIB - 1) & !(2 * MIB - 1);
    // A quarter of RAM: tmpfs contents live in the heap (up to half of it).
    let heap_size = (facts.mem_size / 4).clamp(16 * MIB, 1024 * MIB);
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
    let platform = PvmPlatform::new(phys_base, facts.mem_size - phys_base, heap_size, seed);

    let which = x86::boot_info_read(boot_info::SELFTEST);
    let arg = x86::boot_info_read(boot_info::SELFTEST_ARG);
    let status = if which != 0 {
        selftest::run(&platform, which, arg)
    } else {
        run_sentry(&platform, facts.params_len)
    };
    exit(status)
}

/// Run the sentry proper: decode the boot parameters, run the container's
/// init to its end, and leave the encoded `ExitStatus` for the VMM.
fn run_sentry(platform: &PvmPlatform, params_len: u64) -> i32 {
    let status = match read_params(params_len) {
        Ok(params) => {
            logger::init(params.log_level);
            log::debug!("sentry booted; heap and frames ready");
            let status = guest_kernel::run(platform, params);
            hostcall::log_stats();
            status
        }
        Err(why) => ExitStatus::PlatformFailed(alloc::string::String::from(why)),
    };
    report(&status)
}

/// The boot parameter blob, copied out of guest memory and decoded.
fn read_params(len: u64) -> Result<BootParams, &'static str> {
    if len > gpa::PARAMS_MAX {
        return Err("the boot parameters are larger than their area");
    }
    let mut blob = alloc::vec![0u8; len as usize];
    // SAFETY: `[PARAMS, PARAMS + len)` lies in the parameter area (checked
    // above), mapped at its KERNEL_BASE alias; nothing else writes it now.
    unsafe {
        core::ptr::copy_nonoverlapping(
            x86::kva(gpa::PARAMS) as *const u8,
            blob.as_mut_ptr(),
            blob.len(),
        )
    };
    BootParams::decode(&blob).map_err(|_| "the boot parameters are malformed")
}

/// Leave `status` encoded in the parameter area for the VMM; returns the
/// code for the `EXIT` port.
fn report(status: &ExitStatus) -> i32 {
    let mut enc = status.encode();
    enc.truncate(gpa::PARAMS_MAX as usize);
    // SAFETY: the parameter area is `PARAMS_MAX` bytes at its KERNEL_BASE
    // alias and was consumed at boot.
    unsafe {
        core::ptr::copy_nonoverlapping(enc.as_ptr(), x86::kva(gpa::PARAMS) as *mut u8, enc.len())
    };
    x86::boot_info_write(boot_info::EXIT_LEN, enc.len() as u64);
    status.code()
}

/// Flush host calls and report `status` to the VMM.
fn exit(status: i32) -> ! {
    hostcall::flush_for_exit();
    loop {
        pvm::outl(port::EXIT, status as u32);
        pvm::halt();
    }
}
