//! One sandbox VM on KVM (PVM flavour): guest RAM, the in-kernel irqchip,
//! one vCPU in long mode, the sentry image, the host-call I/O thread, and
//! the run loop with its exit dispatch and boot watchdog, and the signal
//! ring's sender.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_msi, kvm_msr_entry, kvm_segment, kvm_userspace_memory_region, kvm_xcrs, Msrs,
    KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VcpuExit, VcpuFd, VmFd};
use memory::GuestRam;
use vmm_sys_util::eventfd::EventFd;

use crate::abi::{boot_info, gdt, gpa, port, KERNEL_BASE};
use crate::hostcall::{HostCallServer, SharedHost};
use crate::layout::{self, BootInfo};
use crate::signals::{SignalRing, SignalSender};
use crate::VcpuError;

/// The PVM signature MSR and its value ("PVM").
const MSR_PVM_SIGNATURE: u32 = 0x4b56_4d11;
const PVM_SIGNATURE: u64 = 0x4d_5650;
/// How long the arch layer may take to come up before the VM is declared hung.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts of exits to this process, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExitStats {
    /// Calls of `KVM_RUN`.
    pub runs: u64,
    /// Port writes that reached the VMM.
    pub io: u64,
    /// `EINTR` from kicks.
    pub interrupted: u64,
    /// Debug lines.
    pub debug: u64,
}

/// What `run` reports besides the exit status.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// The value the sentry wrote to the `EXIT` port (`ExitStatus::code`).
    pub status: i32,
    /// The sentry's full exit status, when it left one (the sentry proper
    /// does; the arch self-tests do not).
    pub exit_status: Option<guest_kernel::ExitStatus>,
    /// Exit counters.
    pub exits: ExitStats,
    /// Host-call requests served.
    pub hostcalls: u64,
    /// Doorbell wake-ups of the I/O thread.
    pub hostcall_wakeups: u64,
    /// Wake-up interrupts sent to the halted sentry.
    pub guest_wakes: u64,
    /// Doorbells the sentry rang (ioeventfd writes, no exit to the VMM).
    pub doorbells: u64,
    /// Wall time from the first `KVM_RUN` to the exit.
    pub elapsed: Duration,
}

/// A VM ready to boot the sentry.
#[derive(Debug)]
pub struct KvmVm {
    _kvm: Kvm,
    vm: Arc<VmFd>,
    /// vCPU n at index n; vCPU 0 boots the sentry.
    vcpus: Vec<VcpuFd>,
    ram: GuestRam,
    doorbell: Arc<EventFd>,
    signals: Arc<SignalRing>,
    pause: Arc<PauseGate>,
    tsc_khz: u64,
    selftest: (u64, u64),
}

/// runc's `pause` on KVM: the vCPU thread is kicked out of `KVM_RUN` and
/// parks in the run loop until `resume`; the guest does not run meanwhile.
#[derive(Debug, Default)]
struct PauseGate {
    /// Fast check for the run loops.
    paused: AtomicBool,
    /// (how many vCPU threads are parked, the vCPU threads in their loops).
    state: std::sync::Mutex<(usize, Vec<libc::pthread_t>)>,
    cond: std::sync::Condvar,
}

impl PauseGate {
    /// A run loop's safe point: blocks while paused.
    fn park_while_paused(&self) {
        if !self.paused.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.0 += 1;
        self.cond.notify_all();
        while self.paused.load(Ordering::SeqCst) {
            st = match self.cond.wait(st) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
        st.0 -= 1;
    }

    /// The calling thread runs a vCPU (`true`) or no longer does.
    fn register_this_thread(&self, running: bool) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        if let Ok(mut st) = self.state.lock() {
            if running {
                st.1.push(me);
            } else {
                // SAFETY: pthread_equal only compares two thread ids.
                st.1.retain(|t| unsafe { libc::pthread_equal(*t, me) } == 0);
            }
        }
        self.cond.notify_all();
    }
}

/// Pauses and resumes a [`KvmVm`] from another thread (`KvmVm::pauser`).
#[derive(Clone, Debug)]
pub struct Pauser(Arc<PauseGate>);

impl Pauser {
    /// Stops the guest. With `wait`, kicks the vCPU thread out of
    /// `KVM_RUN` until it has parked (up to `limit`); true once parked or
    /// when the VM is not running at all (it then starts paused).
    pub fn pause(&self, wait: bool, limit: Duration) -> bool {
        let g = &self.0;
        g.paused.store(true, Ordering::SeqCst);
        let Ok(mut st) = g.state.lock() else {
            return false;
        };
        if !wait {
            return st.0 >= st.1.len();
        }
        let start = Instant::now();
        while st.0 < st.1.len() {
            if start.elapsed() >= limit {
                return false;
            }
            for t in &st.1 {
                // SAFETY: `t` is a vCPU thread inside its run loop (which
                // unregisters under this lock before leaving), with the
                // kick handler installed. A parked one ignores the kick.
                unsafe { libc::pthread_kill(*t, kick_signal()) };
            }
            st = match g.cond.wait_timeout(st, Duration::from_millis(5)) {
                Ok((s, _)) => s,
                Err(_) => return false,
            };
        }
        true
    }

    /// Lets the guest run again.
    pub fn resume(&self) {
        let g = &self.0;
        g.paused.store(false, Ordering::SeqCst);
        // Taking the lock orders this with a thread about to wait.
        drop(g.state.lock());
        g.cond.notify_all();
    }
}

fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VcpuError {
    move |e| VcpuError::Kvm {
        what,
        errno: e.errno(),
    }
}

/// Whether `/dev/kvm` is this host's PVM (as opposed to VT-x/AMD-V).
pub fn is_pvm(vcpu: &VcpuFd) -> bool {
    let Ok(mut msrs) = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_PVM_SIGNATURE,
        ..Default::default()
    }]) else {
        return false;
    };
    matches!(vcpu.get_msrs(&mut msrs), Ok(1)) && msrs.as_slice()[0].data == PVM_SIGNATURE
}

impl KvmVm {
    /// Create the VM with `mem_bytes` of guest RAM (see
    /// `memory::DEFAULT_MEM_BYTES`) and one vCPU.
    pub fn new(mem_bytes: u64) -> Result<KvmVm, VcpuError> {
        Self::with_vcpus(mem_bytes, 1)
    }

    /// Create the VM with `mem_bytes` of guest RAM and `nr_vcpus` vCPUs
    /// (1 to `MAX_VCPUS`).
    pub fn with_vcpus(mem_bytes: u64, nr_vcpus: usize) -> Result<KvmVm, VcpuError> {
        let nr_vcpus = nr_vcpus.clamp(1, crate::abi::MAX_VCPUS as usize);
        let kvm = Kvm::new().map_err(kvm_err("open /dev/kvm"))?;
        let vm = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
        let ram = GuestRam::new(mem_bytes)?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: ram.size(),
            userspace_addr: ram.host_base(),
        };
        // SAFETY: the region is a live mapping of `memory_size` bytes owned by
        // `ram`, which the VM keeps alive (field order drops `vm` first).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        vm.create_irq_chip()
            .map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
        let vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
        if !is_pvm(&vcpu) {
            return Err(VcpuError::NotPvm);
        }
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
        let tsc_khz = u64::from(vcpu.get_tsc_khz().map_err(kvm_err("KVM_GET_TSC_KHZ"))?);
        let mut vcpus = vec![vcpu];
        for id in 1..nr_vcpus {
            let ap = vm
                .create_vcpu(id as u64)
                .map_err(kvm_err("KVM_CREATE_VCPU"))?;
            ap.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
            // With the in-kernel LAPIC an AP starts in wait-for-SIPI.
            ap.set_mp_state(kvm_bindings::kvm_mp_state {
                mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE,
            })
            .map_err(kvm_err("KVM_SET_MP_STATE"))?;
            vcpus.push(ap);
        }
        let doorbell = Arc::new(EventFd::new(0).map_err(|e| VcpuError::Io("eventfd", e))?);
        vm.register_ioevent(
            &doorbell,
            &IoEventAddress::Pio(u64::from(port::NOTIFY)),
            NoDatamatch,
        )
        .map_err(kvm_err("KVM_IOEVENTFD"))?;
        Ok(KvmVm {
            _kvm: kvm,
            vm: Arc::new(vm),
            vcpus,
            ram,
            doorbell,
            signals: Arc::new(SignalRing::default()),
            pause: Arc::default(),
            tsc_khz,
            selftest: (0, 0),
        })
    }

    /// Guest RAM.
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// A handle that queues signals for the container and interrupts the
    /// sentry (see `abi::hostcall::signals`). It works from any thread,
    /// before, during and after `run`; signals sent before the sentry
    /// polls wait in the ring, which `boot` empties.
    pub fn signal_sender(&self) -> SignalSender {
        let vm = self.vm.clone();
        let msi = kvm_msi {
            address_lo: 0xfee0_0000, // the LAPIC of vCPU 0
            data: crate::abi::signals::SIGNAL_VECTOR,
            ..Default::default()
        };
        let notify = Arc::new(move || {
            if let Err(e) = vm.signal_msi(msi) {
                log::warn!("signal interrupt for the sentry: KVM_SIGNAL_MSI failed: {e}");
            }
        });
        SignalSender::new(self.ram.clone(), self.signals.clone(), notify)
    }

    /// A handle that pauses and resumes the guest from any thread.
    pub fn pauser(&self) -> Pauser {
        Pauser(self.pause.clone())
    }

    /// Run arch self-test `which` with `arg` instead of the sentry (tests, benchmarks).
    pub fn set_selftest(&mut self, which: u64, arg: u64) {
        self.selftest = (which, arg);
    }

    /// Load `image` and `params` (the encoded `BootParams`) and set the vCPU
    /// up to enter the image.
    pub fn boot(&mut self, image: &[u8], params: &[u8]) -> Result<(), VcpuError> {
        let info = crate::image::inspect(image, self.ram.size())?;
        if params.len() as u64 > gpa::PARAMS_MAX {
            return Err(VcpuError::ParamsTooLarge(params.len()));
        }
        if info.end + (64 << 20) > self.ram.size() {
            return Err(VcpuError::BadImage("guest RAM too small for the image"));
        }
        let mut cursor = std::io::Cursor::new(image);
        use linux_loader::loader::KernelLoader;
        linux_loader::loader::Elf::load(self.ram.mem(), None, &mut cursor, None)
            .map_err(|e| VcpuError::Load(e.to_string()))?;
        // Zero .bss explicitly (RAM starts zeroed, but a reboot must not see stale data).
        self.ram.write_bytes(gpa::PARAMS, params)?;
        self.signals.reset(&self.ram)?;
        layout::write_page_tables(&self.ram)?;
        layout::write_gdt_tss(&self.ram, self.vcpus.len() as u64)?;
        let mut seed = [0u64; 4];
        let mut bytes = [0u8; 32];
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .is_ok()
        {
            for (i, s) in seed.iter_mut().enumerate() {
                *s = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            }
        }
        let realtime_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        layout::write_boot_info(
            &self.ram,
            &BootInfo {
                mem_size: self.ram.size(),
                image_end: info.end,
                params_len: params.len() as u64,
                tsc_khz: self.tsc_khz,
                realtime_ns,
                nr_vcpus: self.vcpus.len() as u64,
                seed,
                selftest: self.selftest.0,
                selftest_arg: self.selftest.1,
            },
        )?;
        for (id, vcpu) in self.vcpus.iter().enumerate() {
            setup_vcpu(vcpu, id as u64, info.entry)?;
        }
        Ok(())
    }

    /// The number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.vcpus.len()
    }
}

/// Enter the image at `entry` on vCPU `id` (RDI = `id`), with its own GDT
/// copy and TSS.
fn setup_vcpu(vcpu: &VcpuFd, id: u64, entry: u64) -> Result<(), VcpuError> {
    {
        let mut s = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
        s.cr0 = 0x8005_0033; // PG | AM | WP | NE | ET | MP | PE
        s.cr3 = gpa::BOOT_PGD;
        s.cr4 = 0x20 | 0x200 | 0x400 | 0x1_0000 | 0x4_0000; // PAE | OSFXSR | OSXMMEXCPT | FSGSBASE | OSXSAVE
        s.efer = 0xd01; // SCE | LME | LMA | NXE
        s.cs = kvm_segment {
            base: 0,
            limit: 0xffff_ffff,
            selector: gdt::KERNEL_CS,
            type_: 11,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 1,
            g: 1,
            ..Default::default()
        };
        s.ss = kvm_segment {
            base: 0,
            limit: 0xffff_ffff,
            selector: gdt::KERNEL_SS,
            type_: 3,
            present: 1,
            dpl: 0,
            db: 1,
            s: 1,
            l: 0,
            g: 1,
            ..Default::default()
        };
        let null = kvm_segment {
            unusable: 1,
            ..Default::default()
        };
        s.ds = null;
        s.es = null;
        s.fs = null;
        s.gs = null;
        s.tr = kvm_segment {
            base: KERNEL_BASE + layout::tss_gpa(id),
            limit: gdt::TSS_LIMIT,
            selector: gdt::TSS_SEL,
            type_: 11,
            present: 1,
            ..Default::default()
        };
        s.ldt = kvm_segment {
            unusable: 1,
            type_: 2,
            ..Default::default()
        };
        s.gdt.base = KERNEL_BASE + layout::gdt_gpa(id);
        s.gdt.limit = 0x4f;
        s.idt.base = KERNEL_BASE + gpa::IDT;
        s.idt.limit = 0xfff;
        vcpu.set_sregs(&s).map_err(kvm_err("KVM_SET_SREGS"))?;
        let mut x = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        x.xcrs[0].xcr = 0;
        x.xcrs[0].value = 7; // x87 | SSE | AVX
        vcpu.set_xcrs(&x).map_err(kvm_err("KVM_SET_XCRS"))?;
        let regs = kvm_bindings::kvm_regs {
            rip: entry,
            rdi: id,
            rflags: 2,
            ..Default::default()
        };
        vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
        Ok(())
    }
}

impl KvmVm {
    /// Self-test results (boot info `RESULTS`).
    pub fn results(&self) -> [u64; 8] {
        let mut r = [0u64; 8];
        for (i, v) in r.iter_mut().enumerate() {
            *v = self
                .ram
                .read_u64(gpa::BOOT_INFO + boot_info::RESULTS + i as u64 * 8)
                .unwrap_or(0);
        }
        r
    }

    /// The `ExitStatus` the sentry left in the parameter area, if any.
    fn exit_status(&self) -> Result<Option<guest_kernel::ExitStatus>, VcpuError> {
        let len = self
            .ram
            .read_u64(gpa::BOOT_INFO + boot_info::EXIT_LEN)
            .unwrap_or(0);
        if len == 0 {
            return Ok(None);
        }
        if len > gpa::PARAMS_MAX {
            return Err(VcpuError::BadExitReport("longer than its area"));
        }
        let mut blob = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.ram.read_bytes(gpa::PARAMS, &mut blob)?;
        guest_kernel::ExitStatus::decode(&blob)
            .map(Some)
            .map_err(|_| VcpuError::BadExitReport("malformed"))
    }

    /// TSC frequency of the vCPU in kHz.
    pub fn tsc_khz(&self) -> u64 {
        self.tsc_khz
    }

    /// Run until the sentry exits; host calls go to `host`.
    /// Close the VM without waiting for the host to destroy it. Dropping
    /// the last reference to a VM costs 0.5-9 ms here (PVM; the close of
    /// the VM's fd, likely waiting for an RCU grace period), which was most
    /// of a short container's teardown. A forked child takes copies of
    /// every descriptor and so the last references, closes them all and
    /// exits; this process's own closes are then cheap. The child leaves
    /// this process's session and process group first: whoever waits for
    /// those (a shell, a runtime's caller) must not wait for it, nor see
    /// it as a leftover while it is a zombie; it is reaped by whoever
    /// reaps this process's orphans.
    pub fn close_detached(self) {
        // SAFETY: the child only calls setsid, close_range and _exit, which
        // are async-signal-safe: the locks other threads may hold at the
        // fork do not matter to it. The parent goes on as after any fork.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leaving the session, closing every descriptor of this
            // child, then exiting without running anything of the parent's.
            unsafe {
                libc::setsid();
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                libc::_exit(0);
            }
        }
        drop(self);
    }

    pub fn run(&mut self, host: SharedHost) -> Result<RunReport, VcpuError> {
        let vm = self.vm.clone();
        let nr = self.vcpus.len() as u32;
        let wake = Box::new(move |mask: u32| {
            // Only vCPUs that exist: the mask is the guest's word.
            for id in (0..nr).filter(|id| mask & (1 << id) != 0) {
                let msi = kvm_msi {
                    address_lo: 0xfee0_0000 | (id << 12),
                    data: crate::abi::queue::WAKE_VECTOR,
                    ..Default::default()
                };
                let _ = vm.signal_msi(msi);
            }
        });
        let server = HostCallServer::start(self.ram.clone(), self.doorbell.clone(), host, wake)
            .map_err(|e| VcpuError::Io("spawn the host-call thread", e))?;
        let kicker = Kicker::arm(self.ram.clone(), self.pause.clone())?;
        let start = Instant::now();
        let ctx = LoopCtx {
            ram: &self.ram,
            doorbell: &self.doorbell,
            hostcalls: &server,
            pause: &self.pause,
            stop: AtomicBool::new(false),
            threads: std::sync::Mutex::new(Vec::new()),
            aps_go: std::sync::Mutex::new(false),
            aps_cv: std::sync::Condvar::new(),
        };
        let (bsp, aps) = self.vcpus.split_at_mut(1);
        let (result, exits) = std::thread::scope(|scope| {
            let ctx = &ctx;
            let handles: Vec<_> = aps
                .iter_mut()
                .map(|vcpu| {
                    scope.spawn(move || {
                        let mut exits = ExitStats::default();
                        if !ctx.wait_for_start() {
                            return (Err(VcpuError::Stopped), exits);
                        }
                        let r = vcpu_loop(ctx, vcpu, &mut exits, None);
                        if r.is_err() {
                            // A broken AP ends the VM.
                            ctx.stop_all();
                        }
                        (r, exits)
                    })
                })
                .collect();
            let mut exits = ExitStats::default();
            let r = vcpu_loop(ctx, &mut bsp[0], &mut exits, Some(&kicker));
            ctx.stop_all();
            // The kick is a signal that only interrupts KVM_RUN: one that
            // lands just before a thread enters it is lost. Kick until
            // every AP has left its loop: look again soon (a kicked AP is
            // out within tens of microseconds), then less often.
            let mut nap = std::time::Duration::from_micros(20);
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(nap);
                nap = (nap * 2).min(std::time::Duration::from_millis(2));
                ctx.stop_all();
            }
            let mut result = r;
            for h in handles {
                let Ok((r, e)) = h.join() else { continue };
                exits.runs += e.runs;
                exits.io += e.io;
                exits.interrupted += e.interrupted;
                exits.debug += e.debug;
                if let (Ok(_) | Err(VcpuError::Stopped), Err(e)) = (&result, r) {
                    if !matches!(e, VcpuError::Stopped) {
                        result = Err(e);
                    }
                }
            }
            (result, exits)
        });
        kicker.disarm();
        let q = server.stop();
        let status = result?;
        let exit_status = self.exit_status()?;
        let doorbells = self
            .ram
            .load_u64(gpa::QUEUE + crate::abi::queue::NOTIFIES, Ordering::Relaxed)
            .unwrap_or(0);
        Ok(RunReport {
            status,
            exit_status,
            doorbells,
            exits,
            hostcalls: q.served,
            hostcall_wakeups: q.wakeups,
            guest_wakes: q.wakes,
            elapsed: start.elapsed(),
        })
    }
}

/// What the vCPU threads share while the VM runs.
struct LoopCtx<'a> {
    ram: &'a GuestRam,
    doorbell: &'a EventFd,
    hostcalls: &'a HostCallServer,
    pause: &'a PauseGate,
    /// Set when one vCPU ended the VM: the others leave their loops.
    stop: AtomicBool,
    /// The vCPU threads, for `stop_all`'s kicks.
    threads: std::sync::Mutex<Vec<libc::pthread_t>>,
    /// Whether the APs may enter the guest: the sentry asks for them
    /// (`port::START_CPUS`) when it first has work for a second CPU, so a
    /// single-task container never pays for them (about 1 ms here).
    aps_go: std::sync::Mutex<bool>,
    aps_cv: std::sync::Condvar,
}

impl LoopCtx<'_> {
    /// Let the APs enter the guest.
    fn start_aps(&self) {
        if let Ok(mut go) = self.aps_go.lock() {
            *go = true;
        }
        self.aps_cv.notify_all();
    }

    /// An AP's wait before its first entry: true once it may go, false if
    /// the VM stops first.
    fn wait_for_start(&self) -> bool {
        let Ok(mut go) = self.aps_go.lock() else {
            return false;
        };
        while !*go && !self.stop.load(Ordering::SeqCst) {
            match self.aps_cv.wait(go) {
                Ok(g) => go = g,
                Err(_) => return false,
            }
        }
        *go && !self.stop.load(Ordering::SeqCst)
    }

    fn stop_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Under the lock: an AP between its check and its wait sees it.
        drop(self.aps_go.lock());
        self.aps_cv.notify_all();
        if let Ok(threads) = self.threads.lock() {
            for t in threads.iter() {
                // SAFETY: `t` is a vCPU thread still in its loop (it leaves
                // the list under this lock before returning), with the kick
                // handler installed.
                unsafe { libc::pthread_kill(*t, kick_signal()) };
            }
        }
    }

    fn text(&self) -> String {
        let base = gpa::BOOT_INFO;
        let len = self
            .ram
            .read_u64(base + boot_info::PANIC_LEN)
            .unwrap_or(0)
            .min(boot_info::PANIC_MAX);
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        let _ = self.ram.read_bytes(base + boot_info::PANIC_TEXT, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

fn dump(vcpu: &VcpuFd) -> String {
    match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => format!(
            "rip={:#x} rsp={:#x} rax={:#x} rflags={:#x} cs={:#x} cr2={:#x} cr3={:#x}",
            r.rip, r.rsp, r.rax, r.rflags, s.cs.selector, s.cr2, s.cr3
        ),
        _ => "registers unavailable".into(),
    }
}

/// One vCPU's run loop, on its own thread; the boot vCPU's has the boot
/// watchdog. Returns the `EXIT` port's value, or `Stopped` when another
/// vCPU ended the VM.
fn vcpu_loop(
    ctx: &LoopCtx<'_>,
    vcpu: &mut VcpuFd,
    exits: &mut ExitStats,
    kicker: Option<&Kicker>,
) -> Result<i32, VcpuError> {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    if let Ok(mut t) = ctx.threads.lock() {
        t.push(me);
    }
    ctx.pause.register_this_thread(true);
    let r = vcpu_loop_inner(ctx, vcpu, exits, kicker);
    ctx.pause.register_this_thread(false);
    if let Ok(mut t) = ctx.threads.lock() {
        // SAFETY: pthread_equal only compares two thread ids.
        t.retain(|x| unsafe { libc::pthread_equal(*x, me) } == 0);
    }
    r
}

fn vcpu_loop_inner(
    ctx: &LoopCtx<'_>,
    vcpu: &mut VcpuFd,
    exits: &mut ExitStats,
    kicker: Option<&Kicker>,
) -> Result<i32, VcpuError> {
    loop {
        if ctx.stop.load(Ordering::SeqCst) {
            return Err(VcpuError::Stopped);
        }
        ctx.pause.park_while_paused();
        // A stop while parked came with a kick the parked thread ignored.
        if ctx.stop.load(Ordering::SeqCst) {
            return Err(VcpuError::Stopped);
        }
        exits.runs += 1;
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) if e.errno() == libc::EINTR => {
                exits.interrupted += 1;
                vcpu.set_kvm_immediate_exit(0);
                if kicker.is_some_and(Kicker::fired) {
                    return Err(VcpuError::BootTimeout(BOOT_TIMEOUT, dump(vcpu)));
                }
                continue;
            }
            Err(e) => {
                return Err(VcpuError::Kvm {
                    what: "KVM_RUN",
                    errno: e.errno(),
                })
            }
        };
        match exit {
            VcpuExit::IoOut(p, data) => {
                exits.io += 1;
                let v = data
                    .iter()
                    .rev()
                    .fold(0u32, |a, b| (a << 8) | u32::from(*b));
                match p {
                    port::EXIT => return Ok(v as i32),
                    port::PANIC => return Err(VcpuError::GuestPanic(ctx.text())),
                    port::DEBUG => {
                        exits.debug += 1;
                        log::info!("sentry: {}", ctx.text());
                    }
                    port::NOTIFY => {
                        let _ = ctx.doorbell.write(1);
                    }
                    port::SERVE => ctx.hostcalls.serve_files(),
                    port::START_CPUS => ctx.start_aps(),
                    0x80 => {}
                    _ => {
                        return Err(VcpuError::UnexpectedExit(
                            format!("out to port {p:#x}"),
                            dump(vcpu),
                        ))
                    }
                }
            }
            VcpuExit::Shutdown => return Err(VcpuError::GuestShutdown(dump(vcpu))),
            VcpuExit::InternalError => {
                return Err(VcpuError::UnexpectedExit(
                    "internal error".into(),
                    dump(vcpu),
                ));
            }
            VcpuExit::FailEntry(reason, _) => {
                return Err(VcpuError::UnexpectedExit(
                    format!("failed entry {reason:#x}"),
                    dump(vcpu),
                ));
            }
            VcpuExit::Hlt => return Err(VcpuError::UnexpectedExit("halt".into(), dump(vcpu))),
            other => return Err(VcpuError::UnexpectedExit(format!("{other:?}"), dump(vcpu))),
        }
    }
}

/// The boot watchdog: if the sentry has not reported `BOOTED` within
/// [`BOOT_TIMEOUT`], it kicks the vCPU thread out of `KVM_RUN` with a
/// signal, again and again until the run loop notices.
#[derive(Debug)]
struct Kicker {
    done: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    std::sync::atomic::fence(Ordering::Acquire);
}

fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN() + 2
}

impl Kicker {
    fn arm(ram: GuestRam, pause: Arc<PauseGate>) -> Result<Kicker, VcpuError> {
        vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick)
            .map_err(|e| VcpuError::Io("kick signal handler", e.into()))?;
        let done = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        // SAFETY: pthread_self has no preconditions.
        let target = unsafe { libc::pthread_self() };
        let (d, f) = (done.clone(), fired.clone());
        let thread = std::thread::Builder::new()
            .name("rf-watchdog".into())
            .spawn(move || {
                let mut deadline = Instant::now() + BOOT_TIMEOUT;
                while !d.load(Ordering::SeqCst) {
                    // A paused guest is not late.
                    if pause.paused.load(Ordering::SeqCst) {
                        deadline = Instant::now() + BOOT_TIMEOUT;
                    }
                    let booted = matches!(
                        ram.read_u64(gpa::BOOT_INFO + boot_info::BOOT_STATE),
                        Ok(boot_info::BOOTED)
                    );
                    if booted {
                        return;
                    }
                    if Instant::now() >= deadline {
                        f.store(true, Ordering::SeqCst);
                        // SAFETY: `target` is the vCPU thread, alive until `disarm` joins us.
                        unsafe { libc::pthread_kill(target, kick_signal()) };
                    }
                    // `disarm` unparks us, so a short run does not wait here.
                    std::thread::park_timeout(Duration::from_millis(20));
                }
            })
            .map_err(|e| VcpuError::Io("spawn the watchdog", e))?;
        Ok(Kicker {
            done,
            fired,
            thread: Some(thread),
        })
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    fn disarm(mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
