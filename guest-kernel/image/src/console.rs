//! Text to the VMM: panic reports and rare debug lines, written into the
//! boot info page and announced with one port write (a synchronous exit).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::abi::hostcall::{boot_info, port};
use crate::arch::x86_64::{kva, pvm};

struct PanicBuf {
    len: usize,
}

impl PanicBuf {
    fn base() -> *mut u8 {
        kva(crate::abi::hostcall::gpa::BOOT_INFO + boot_info::PANIC_TEXT) as *mut u8
    }
}

impl Write for PanicBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let max = boot_info::PANIC_MAX as usize;
        let n = s.len().min(max - self.len);
        // SAFETY: the panic area is PANIC_MAX bytes of the boot info page,
        // mapped at its KERNEL_BASE alias; `len + n <= max`.
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), Self::base().add(self.len), n) };
        self.len += n;
        Ok(())
    }
}

fn emit(args: fmt::Arguments<'_>, which: u16) {
    let mut buf = PanicBuf { len: 0 };
    let _ = buf.write_fmt(args);
    crate::arch::x86_64::boot_info_write(boot_info::PANIC_LEN, buf.len as u64);
    pvm::outl(which, 0);
}

/// A debug line, printed by the VMM. Costs one exit (about 25 µs).
pub fn debug(args: fmt::Arguments<'_>) {
    emit(args, port::DEBUG);
}

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Report a fatal error to the VMM and stop this vCPU.
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    if !PANICKING.swap(true, Ordering::SeqCst) {
        crate::hostcall::flush_for_exit();
        emit(args, port::PANIC);
    }
    halt_forever()
}

/// Stop for good (the VMM has been told, or cannot be).
pub fn halt_forever() -> ! {
    loop {
        pvm::outl(port::PANIC, 1);
        pvm::halt();
    }
}

#[macro_export]
macro_rules! kdebug {
    ($($arg:tt)*) => { $crate::console::debug(format_args!($($arg)*)) };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal(format_args!("sentry panic: {info}"))
}
