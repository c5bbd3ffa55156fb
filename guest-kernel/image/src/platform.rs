//! `PvmPlatform`: the sentry's `Platform` on the PVM flavour of KVM.
//!
//! Physical addresses are GPAs. The sentry's frames are the guest RAM above
//! the arch layer's own reservation (fixed low layout, image, kernel heap),
//! reached through the direct map, so `phys_read`/`phys_write` are plain
//! copies that never fault.

use alloc::boxed::Box;

use crate::abi::{Errno, KResult, UserRegs};
use crate::arch::x86_64::paging::{PgdPair, PTE_A, PTE_D, PTE_NX, PTE_P, PTE_U, PTE_W, USER_END};
use crate::arch::x86_64::{self as arch, entry, phys_to_virt, pvm};
use crate::hostcall::QueueHost;
use crate::signals::SignalRing;
use guest_kernel::platform::{
    Clock, HostHandle, HostOps, HostSignal, PhysAddr, Platform, PlatformError, Prot, Trap, TscClock,
};

/// Linux's `TASK_SIZE`: the top user page stays unmapped.
const TASK_SIZE: u64 = USER_END - 4096;

/// Signal numbers and codes the traps turn into.
mod sig {
    pub const SIGILL: i32 = 4;
    pub const SIGTRAP: i32 = 5;
    pub const SIGBUS: i32 = 7;
    pub const SIGFPE: i32 = 8;
    pub const SIGSEGV: i32 = 11;
    pub const SI_KERNEL: i32 = 0x80;
    pub const ILL_ILLOPN: i32 = 2;
    pub const FPE_INTDIV: i32 = 1;
    pub const FPE_FLTINV: i32 = 7;
    pub const TRAP_BRKPT: i32 = 1;
    pub const TRAP_TRACE: i32 = 2;
    pub const BUS_ADRALN: i32 = 1;
}

/// User RFLAGS bits the application may control: CF PF AF ZF SF TF DF OF, and ID.
const USER_RFLAGS_MASK: u64 = 0x0000_0000_0020_0dd5 | 0x100;

/// The FPU/SSE/AVX state of one thread (XSAVE area for XCR0 = 7).
#[repr(C, align(64))]
pub struct FpuArea([u8; 1024]);

impl FpuArea {
    fn new() -> Box<FpuArea> {
        let mut a = Box::new(FpuArea([0; 1024]));
        a.0[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // FCW
        a.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR
        a
    }
}

impl core::fmt::Debug for FpuArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FpuArea")
    }
}

/// A user thread: its FPU state.
#[derive(Debug)]
pub struct PvmThread {
    fpu: Box<FpuArea>,
}

/// A user address space.
#[derive(Debug)]
pub struct PvmAddressSpace {
    pgd: PgdPair,
}

/// The platform.
#[derive(Debug)]
pub struct PvmPlatform {
    phys_base: u64,
    phys_size: u64,
    heap_size: u64,
    host: QueueHost,
    signals: SignalRing,
    rng: core::sync::atomic::AtomicU64,
}

fn canonical(a: u64) -> bool {
    let top = a >> 47;
    top == 0 || top == 0x1_ffff
}

fn pte_flags(prot: Prot) -> u64 {
    if !(prot.read || prot.write || prot.exec) {
        return 0; // PROT_NONE: keep the frame, not present
    }
    // Accessed (and, if writable, dirty) from the start: the host's shadow
    // MMU then prefetches neighbouring entries on a shadow fault, and a
    // first write needs no second fault to set D.
    let mut f = PTE_P | PTE_U | PTE_A;
    if prot.write {
        f |= PTE_W | PTE_D;
    }
    if !prot.exec {
        f |= PTE_NX;
    }
    f
}

impl PvmPlatform {
    /// The platform over GPAs `[phys_base, phys_base + phys_size)`.
    pub fn new(phys_base: u64, phys_size: u64, heap_size: u64, seed: u64) -> PvmPlatform {
        PvmPlatform {
            phys_base,
            phys_size,
            heap_size,
            host: QueueHost,
            signals: SignalRing::new(),
            rng: core::sync::atomic::AtomicU64::new(seed | 1),
        }
    }

    /// Malformed entries (and broken indices) seen in the host signal ring.
    pub fn signals_rejected(&self) -> u64 {
        self.signals.rejected()
    }

    fn va_of(&self, pa: PhysAddr, len: usize) -> *mut u8 {
        match pa.checked_add(len as u64) {
            Some(end) if pa >= self.phys_base && end <= self.phys_base + self.phys_size => {
                phys_to_virt(pa) as *mut u8
            }
            _ => crate::console::fatal(format_args!(
                "physical access out of range: {pa:#x}+{len:#x} (range {:#x}+{:#x})",
                self.phys_base, self.phys_size
            )),
        }
    }

    fn check_range(&self, va: u64, len: u64) -> KResult<()> {
        if va & 0xfff != 0 || len & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        match va.checked_add(len) {
            Some(end) if end <= TASK_SIZE => Ok(()),
            _ => Err(Errno::EFAULT),
        }
    }
}

fn trap_of(vector: u64, error: u64, regs: &UserRegs) -> Trap {
    use sig::*;
    let (signo, code, addr) = match vector {
        14 => {
            return Trap::PageFault {
                addr: arch::fault_cr2(),
                write: Some(error & 2 != 0),
                not_present: error & 1 == 0,
                exec: error & 0x10 != 0,
            }
        }
        0 => (SIGFPE, FPE_INTDIV, regs.rip),
        1 => (SIGTRAP, TRAP_TRACE, regs.rip),
        3 => (SIGTRAP, SI_KERNEL, 0),
        6 => (SIGILL, ILL_ILLOPN, regs.rip),
        16 | 19 => (SIGFPE, FPE_FLTINV, regs.rip),
        17 => (SIGBUS, BUS_ADRALN, 0),
        11 | 12 => (SIGBUS, SI_KERNEL, 0),
        v if v >= 32 => return Trap::Interrupt,
        _ => (SIGSEGV, SI_KERNEL, 0), // #GP, #OF, #BR, #NM and the rest
    };
    let _ = TRAP_BRKPT;
    Trap::Exception { signo, code, addr }
}

impl Platform for PvmPlatform {
    type AddressSpace = PvmAddressSpace;
    type Thread = PvmThread;
    type Host = QueueHost;
    /// The kernel CR3 of the space.
    type SpaceRef = u64;

    fn phys_range(&self) -> (PhysAddr, u64) {
        (self.phys_base, self.phys_size)
    }

    fn host_pread_phys(&self, h: HostHandle, pa: PhysAddr, len: usize, off: u64) -> KResult<usize> {
        // Frames are guest-physical: the VMM preads straight into them.
        self.va_of(pa, len);
        crate::hostcall::pread_gpa(h, pa, len as u64, off)
    }

    fn process_limit(&self) -> u64 {
        // The sentry's heap bounds it too: a process's kernel state (task,
        // thread group, address-space maps, descriptors) lives there.
        let by_frames = self.phys_size / (32 * 4096);
        let by_heap = self.heap_size / (128 * 1024);
        by_frames.min(by_heap).clamp(64, 1 << 15)
    }

    fn tmpfs_limit(&self) -> u64 {
        // The rest of the heap is the sentry's own working memory.
        self.heap_size / 2
    }

    fn max_user_address(&self) -> u64 {
        TASK_SIZE
    }

    fn phys_read(&self, pa: PhysAddr, buf: &mut [u8]) {
        let src = self.va_of(pa, buf.len());
        // SAFETY: `va_of` checked the range lies in the sentry's RAM, mapped by the direct map.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
    }

    fn phys_write(&self, pa: PhysAddr, data: &[u8]) {
        let dst = self.va_of(pa, data.len());
        // SAFETY: as for `phys_read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
    }

    fn phys_zero(&self, pa: PhysAddr, len: u64) {
        let dst = self.va_of(pa, len as usize);
        // SAFETY: as for `phys_read`.
        unsafe { core::ptr::write_bytes(dst, 0, len as usize) };
    }

    fn new_address_space(&self) -> Result<PvmAddressSpace, PlatformError> {
        PgdPair::new()
            .map(|pgd| PvmAddressSpace { pgd })
            .ok_or(PlatformError::Resource("page-table pages", Errno::ENOMEM.0))
    }

    fn map(
        &self,
        space: &mut PvmAddressSpace,
        va: u64,
        pa: PhysAddr,
        len: u64,
        prot: Prot,
    ) -> KResult<()> {
        self.check_range(va, len)?;
        match pa.checked_add(len) {
            Some(end)
                if pa >= self.phys_base
                    && end <= self.phys_base + self.phys_size
                    && pa & 0xfff == 0 => {}
            _ => return Err(Errno::EFAULT),
        }
        space
            .pgd
            .map(va, pa, len, pte_flags(prot))
            .map_err(|()| Errno::ENOMEM)
    }

    fn unmap(&self, space: &mut PvmAddressSpace, va: u64, len: u64) -> KResult<()> {
        self.check_range(va, len)?;
        space.pgd.unmap(va, len);
        Ok(())
    }

    fn protect(&self, space: &mut PvmAddressSpace, va: u64, len: u64, prot: Prot) -> KResult<()> {
        self.check_range(va, len)?;
        space.pgd.protect(va, len, pte_flags(prot));
        Ok(())
    }

    fn new_thread(&self, _space: &mut PvmAddressSpace) -> Result<PvmThread, PlatformError> {
        Ok(PvmThread {
            fpu: FpuArea::new(),
        })
    }

    fn cpus(&self) -> usize {
        arch::nr_cpus()
    }

    fn run_cpus(&self, cpu_loop: &(dyn Fn(usize) + Sync)) {
        crate::smp::run_cpus(cpu_loop);
    }

    fn kick_cpu(&self, cpu: usize) {
        arch::kick(cpu);
    }

    fn start_cpus(&self) {
        crate::arch::x86_64::pvm::outl(crate::abi::hostcall::port::START_CPUS, 0);
    }

    fn this_cpu(&self) -> usize {
        arch::this_cpu()
    }

    fn activate(&self, space: &mut PvmAddressSpace) -> u64 {
        space.pgd.activate();
        space.pgd.cr3
    }

    fn unload_space(&self) {
        crate::arch::x86_64::paging::unload();
    }

    fn switch(
        &self,
        _space: u64,
        thread: &mut PvmThread,
        regs: &mut UserRegs,
    ) -> Result<Trap, PlatformError> {
        // The application never picks its selectors or privileged flags.
        regs.cs = crate::abi::regs::USER_CS;
        regs.ss = crate::abi::regs::USER_SS;
        regs.rflags = (regs.rflags & USER_RFLAGS_MASK) | 0x202;
        if !canonical(regs.rip) || regs.rip >= USER_END {
            // Linux faults on the return; the task gets SIGSEGV at once.
            return Ok(Trap::Exception {
                signo: sig::SIGSEGV,
                code: sig::SI_KERNEL,
                addr: 0,
            });
        }
        if !canonical(regs.fs_base) {
            regs.fs_base = 0;
        }
        if !canonical(regs.gs_base) {
            regs.gs_base = 0;
        }
        arch::arm_slice();
        let pc = arch::percpu();
        // SAFETY: per-CPU data of this CPU; nothing else runs here.
        unsafe {
            if (*pc).user_gs != regs.gs_base {
                pvm::wrmsr(pvm::msr::KERNEL_GS_BASE, regs.gs_base);
                (*pc).user_gs = regs.gs_base;
            }
        }
        // SAFETY: `regs` and the FPU area outlive the call; the stub saves
        // and restores every callee-saved register and returns on this stack.
        let kind = unsafe { entry::pvm_enter_user(regs, thread.fpu.0.as_mut_ptr()) };
        // SAFETY: as above.
        unsafe {
            regs.gs_base = (*pc).user_gs;
            if kind == entry::KIND_SYSCALL {
                (*pc).syscalls += 1;
                return Ok(Trap::Syscall);
            }
            (*pc).traps += 1;
            Ok(trap_of((*pc).vector, (*pc).error_code, regs))
        }
    }

    fn fpu_state(&self, thread: &PvmThread) -> Option<[u8; 512]> {
        // The XSAVE legacy region is the `fxsave` image.
        let mut st = [0u8; 512];
        st.copy_from_slice(&thread.fpu.0[..512]);
        Some(st)
    }

    fn set_fpu_state(&self, thread: &mut PvmThread, state: &[u8; 512]) {
        let area = &mut thread.fpu.0;
        area[..512].copy_from_slice(state);
        // MXCSR bits above 15 are reserved: XRSTOR would fault on them in
        // the sentry. The application cannot set them natively either.
        let mxcsr = u32::from_le_bytes([area[24], area[25], area[26], area[27]]) & 0xffff;
        area[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        // XSTATE_BV: x87 and SSE come from the legacy region; AVX stays as is.
        area[512] |= 0b11;
    }

    fn take_host_signal(&self) -> Option<HostSignal> {
        self.signals.take()
    }

    fn take_exec(&self) -> Option<guest_kernel::ExecRequest> {
        let posted = self.signals.exec_posted()?;
        let mut buf = alloc::vec![0u8; crate::abi::hostcall::queue::EXEC_MAX as usize];
        loop {
            match self.host.take_exec(&mut buf) {
                Ok(0) => break,
                Ok(n) => match guest_kernel::ExecRequest::decode(&buf[..n]) {
                    Ok(req) => return Some(req),
                    Err(_) => log::warn!("host sent a malformed exec request ({n} bytes)"),
                },
                Err(e) => {
                    log::warn!("fetching an exec request: {e:?}");
                    break;
                }
            }
        }
        self.signals.execs_drained(posted);
        None
    }

    fn exec_exited(&self, id: u32, code: i32) {
        self.host.exec_exited(id, code);
    }

    fn release_thread(&self, _space: &mut PvmAddressSpace, _thread: PvmThread) {}

    fn host(&self) -> &QueueHost {
        &self.host
    }

    fn now(&self, clock: Clock) -> u64 {
        match clock {
            Clock::Realtime => arch::realtime_ns(),
            Clock::Monotonic => arch::monotonic_ns(),
        }
    }

    fn tsc_clock(&self) -> Option<TscClock> {
        // The vDSO reads the TSC in user mode (CR4.TSD is clear here): only
        // an invariant TSC (CPUID 0x80000007 EDX bit 8) ticks at the rate
        // the VMM measured, whatever the CPU's power state.
        if pvm::cpuid(0x8000_0007, 0)[3] & (1 << 8) == 0 {
            return None;
        }
        let (khz, boot_tsc, boot_realtime) = arch::clock_params();
        // Exactly `now`: monotonic is 0 at the boot TSC, realtime the
        // VMM's wall clock then.
        Some(TscClock {
            tsc_hz: khz.checked_mul(1000)?,
            tsc_base: boot_tsc,
            mono_base_ns: 0,
            realtime_base_ns: boot_realtime,
        })
    }

    fn idle(&self, deadline: Option<u64>) {
        // Without a deadline only the host can make work: a signal (its
        // ring announces it with an interrupt, which ends the halt). Still
        // wake up now and then, in case an announcement was lost.
        const MAX_SLEEP_NS: u64 = 1_000_000_000;
        let now = arch::monotonic_ns();
        let until = deadline
            .unwrap_or(u64::MAX)
            .min(now.saturating_add(MAX_SLEEP_NS));
        if until > now {
            arch::halt_until(until);
        }
    }

    fn random(&self, buf: &mut [u8]) {
        use core::sync::atomic::Ordering;
        for chunk in buf.chunks_mut(8) {
            // SplitMix64 over the host seed, mixed with the TSC.
            let mut z = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) ^ pvm::rdtsc();
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}
