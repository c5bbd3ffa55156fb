//! The sentry image on real `/dev/kvm` (PVM): boot, user mode, traps, host
//! calls, and the failure paths. Skips (loudly) only when `/dev/kvm` is absent.

use std::io::{Read, Seek};
use std::os::fd::AsFd;
use std::sync::Arc;

use guest_kernel::{BootParams, ExitStatus};
use vcpu::{KvmVm, SharedHost, VcpuError, SENTRY_IMAGE};

fn kvm_present() -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
    {
        return true;
    }
    eprintln!("!!! SKIPPING KVM TEST: /dev/kvm cannot be opened on this machine !!!");
    false
}

/// Output captured in an unlinked temporary file.
struct Capture(std::fs::File);

impl Capture {
    fn text(&mut self) -> String {
        let mut s = String::new();
        self.0.rewind().expect("rewind");
        self.0.read_to_string(&mut s).expect("read capture");
        s
    }
}

/// `devices::HostServices` rooted at `root`, with stdout and stderr captured.
fn host_at(root: &std::path::Path) -> (SharedHost, Capture) {
    let path = std::env::temp_dir().join(format!(
        "rf-vcpu-capture-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("capture file");
    let _ = std::fs::remove_file(&path);
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let host = devices::HostServices::new(root, [null.as_fd(), file.as_fd(), file.as_fd()])
        .expect("host services");
    (Arc::new(host), Capture(file))
}

fn capture() -> (SharedHost, Capture) {
    host_at(std::path::Path::new("/"))
}

fn selftest(which: u64, arg: u64) -> (Result<vcpu::RunReport, VcpuError>, KvmVm, Capture) {
    let mut vm = KvmVm::new(memory::DEFAULT_MEM_BYTES).expect("create VM");
    vm.set_selftest(which, arg);
    vm.boot(SENTRY_IMAGE, b"").expect("boot");
    let (host, out) = capture();
    let r = vm.run(host);
    (r, vm, out)
}

/// Boot the sentry proper with `params` (raw bytes) on an empty root.
fn sentry(params: &[u8]) -> (Result<vcpu::RunReport, VcpuError>, Capture) {
    let root = std::env::temp_dir().join(format!("rf-vcpu-root-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("root dir");
    let mut vm = KvmVm::new(128 << 20).expect("create VM");
    vm.boot(SENTRY_IMAGE, params).expect("boot");
    let (host, out) = host_at(&root);
    (vm.run(host), out)
}

#[test]
fn sentry_reports_a_missing_program() {
    if !kvm_present() {
        return;
    }
    let params = BootParams {
        args: vec![b"/bin/nope".to_vec()],
        ..Default::default()
    };
    let (r, _) = sentry(&params.encode());
    let r = r.expect("run");
    match r.exit_status {
        Some(ExitStatus::ExecFailed {
            ref path, errno, ..
        }) => {
            assert_eq!(path, b"/bin/nope");
            assert_eq!(errno, guest_kernel::abi::Errno::ENOENT);
        }
        ref other => panic!("expected an exec failure, got {other:?}"),
    }
    assert_eq!(r.status, 127);
    assert!(r.exits.runs < 5, "{:?}", r.exits);
}

#[test]
fn sentry_rejects_malformed_boot_parameters() {
    if !kvm_present() {
        return;
    }
    let (r, _) = sentry(b"not boot parameters");
    let r = r.expect("run");
    assert_eq!(
        r.exit_status,
        Some(ExitStatus::PlatformFailed(
            "the boot parameters are malformed".into()
        ))
    );
}

#[test]
fn hello_through_the_host_call_queue() {
    if !kvm_present() {
        return;
    }
    let (r, _vm, mut out) = selftest(1, 0);
    let r = r.expect("run");
    assert_eq!(r.status, 0);
    let text = out.text();
    assert_eq!(text, "hello from the sentry, line 0\nhello from the sentry, line 1\nhello from the sentry, line 2\n");
    eprintln!("hello: {r:?}");
}

#[test]
fn syscalls_round_trip_without_exits() {
    if !kvm_present() {
        return;
    }
    let n = 100_000;
    let (r, vm, _) = selftest(2, n);
    let r = r.expect("run");
    assert_eq!(r.status, 0);
    let res = vm.results();
    assert_eq!(res[1], n);
    let ns = res[0] as f64 * 1e6 / vm.tsc_khz() as f64 / n as f64;
    eprintln!(
        "getppid round trip through PvmPlatform::switch: {ns:.0} ns; exits to the VMM: {:?}",
        r.exits
    );
    // Boot plus one EXIT port write: no exit per syscall.
    assert!(r.exits.runs < 10, "{:?}", r.exits);
}

#[test]
fn user_traps_become_the_right_traps() {
    if !kvm_present() {
        return;
    }
    let (r, vm, _) = selftest(3, 0);
    let r = r.expect("run");
    assert_eq!(r.status, 0);
    let res = vm.results();
    assert_eq!(res[0], 0x600008 | 1 << 63, "write fault at 0x600008");
    assert_eq!(res[1], 0x1111_2222_3333_4444, "xmm5 across a syscall");
    assert_eq!(res[2], 0x600100, "fs base across a syscall");
    assert_eq!(res[3], 0x77, "fs-relative load");
    assert_eq!(&res[4..7], &[4, 5, 8], "SIGILL, SIGTRAP, SIGFPE");
    assert_eq!(
        res[7], 0xffff_ffff_8020_0000,
        "jump into the kernel half faults"
    );
}

#[test]
fn kernel_fault_is_reported_not_hung() {
    if !kvm_present() {
        return;
    }
    let (r, _, _) = selftest(4, 0);
    match r {
        Err(VcpuError::GuestPanic(msg)) => {
            assert!(msg.contains("kernel-mode fault"), "{msg}");
            assert!(msg.contains("vector 14"), "{msg}");
        }
        other => panic!("expected a guest panic, got {other:?}"),
    }
}

#[test]
fn corrupt_image_is_a_clear_error() {
    if !kvm_present() {
        return;
    }
    let mut vm = KvmVm::new(memory::DEFAULT_MEM_BYTES).expect("create VM");
    let mut img = SENTRY_IMAGE.to_vec();
    img[0] = 0;
    assert!(matches!(vm.boot(&img, b""), Err(VcpuError::BadImage(_))));
}

#[test]
fn hostcall_nop_latency() {
    if !kvm_present() {
        return;
    }
    let n = 2000;
    let (r, vm, _) = selftest(5, n);
    let r = r.expect("run");
    let res = vm.results();
    let ns = res[0] as f64 * 1e6 / vm.tsc_khz() as f64 / n as f64;
    eprintln!(
        "host-call nop round trip: {ns:.0} ns; doorbells {} of {n}; {r:?}",
        res[1]
    );
}

/// Signals from the host: they wake a halted sentry, preempt user code,
/// and the sentry skips malformed entries and a broken ring index.
#[test]
fn host_signals_reach_the_sentry() {
    use guest_kernel::platform::HostSignal;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    use vcpu::abi::{boot_info, gpa, signals as s};
    if !kvm_present() {
        return;
    }
    let mut vm = KvmVm::new(memory::DEFAULT_MEM_BYTES).expect("create VM");
    vm.set_selftest(6, 0);
    vm.boot(SENTRY_IMAGE, b"").expect("boot");
    let ram = vm.ram().clone();
    let tx = vm.signal_sender();
    let host = std::thread::spawn(move || {
        let results = |i: u64| {
            ram.read_u64(gpa::BOOT_INFO + boot_info::RESULTS + 8 * i)
                .unwrap()
        };
        let phase = |n: u64| {
            let t0 = Instant::now();
            while results(7) != n {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "phase {n} never came"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            // Let the sentry get into its halt or its user program.
            std::thread::sleep(Duration::from_millis(50));
        };
        phase(1);
        tx.send(HostSignal {
            pid: 0,
            sig: 15,
            all: false,
            pgrp: false,
            container: 0,
            exec: false,
        });
        phase(2);
        tx.send(HostSignal {
            pid: 2,
            sig: 9,
            all: true,
            pgrp: false,
            container: 0,
            exec: false,
        });
        phase(3);
        // A broken host: malformed entries around a good one.
        let entries: [(i32, i32, u32); 5] = [
            (0, 0, 0),
            (0, 65, 0),
            (-5, 15, 0),
            (0, 15, 0x80),
            (3, 12, s::FLAG_ALL),
        ];
        for (i, (pid, sig, flags)) in entries.iter().enumerate() {
            let e = gpa::SIGNALS + s::ENTRIES + (2 + i as u64) * s::ENTRY_SIZE;
            ram.store_u32(e + s::ENTRY_PID, *pid as u32, Ordering::Relaxed)
                .unwrap();
            ram.store_u32(e + s::ENTRY_SIG, *sig as u32, Ordering::Relaxed)
                .unwrap();
            ram.store_u32(e + s::ENTRY_FLAGS, *flags, Ordering::Relaxed)
                .unwrap();
        }
        ram.store_u64(gpa::SIGNALS + s::HEAD, 7, Ordering::Release)
            .unwrap();
        phase(4);
        ram.store_u64(gpa::SIGNALS + s::HEAD, 1007, Ordering::Release)
            .unwrap();
        ram
    });
    let r = vm.run(capture().0).expect("run");
    let ram = host.join().expect("host thread");
    assert_eq!(r.status, 0, "self-test status");
    let res = vm.results();
    assert_eq!(res[0], 15, "the signal that woke the halted sentry");
    assert!(
        res[1] < 500_000_000,
        "the interrupt ends the halt (the backstop is 1 s): waited {} ns",
        res[1]
    );
    assert_eq!(
        res[2],
        9 | 2 << 8 | 1 << 40,
        "the signal taken from user mode"
    );
    assert!(res[3] >= 1);
    assert_eq!(
        res[4],
        12 | 3 << 8 | 1 << 40,
        "the good entry among bad ones"
    );
    assert_eq!(res[5], 4, "four malformed entries skipped");
    assert_eq!(res[6], 1, "a HEAD beyond the ring is refused");
    assert_eq!(
        ram.load_u64(gpa::SIGNALS + s::TAIL, Ordering::Acquire)
            .unwrap(),
        1007,
        "the sentry skipped to the host's HEAD"
    );
    eprintln!(
        "host signals: halted wake-up after {} µs of waiting (incl. the host's 50 ms), {} interrupts of the spinning program; {:?}",
        res[1] / 1000,
        res[3],
        r.exits
    );
}
