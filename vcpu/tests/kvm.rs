//! The sentry image on real `/dev/kvm` (PVM): boot, user mode, traps, host
//! calls, and the failure paths. Skips (loudly) only when `/dev/kvm` is absent.

use std::sync::{Arc, Mutex};

use vcpu::{KvmVm, LocalHost, Stream, VcpuError, SENTRY_IMAGE};

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

fn capture() -> (Box<LocalHost>, Arc<Mutex<Vec<u8>>>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let s = Stream::Capture(out.clone());
    let host = LocalHost::new(std::path::Path::new("/"), s.clone(), s.clone(), s).expect("backend");
    (Box::new(host), out)
}

fn selftest(
    which: u64,
    arg: u64,
) -> (
    Result<vcpu::RunReport, VcpuError>,
    KvmVm,
    Arc<Mutex<Vec<u8>>>,
) {
    let mut vm = KvmVm::new(memory::DEFAULT_MEM_BYTES).expect("create VM");
    vm.set_selftest(which, arg);
    vm.boot(SENTRY_IMAGE, b"").expect("boot");
    let (host, out) = capture();
    let r = vm.run(host);
    (r, vm, out)
}

#[test]
fn hello_through_the_host_call_queue() {
    if !kvm_present() {
        return;
    }
    let (r, _vm, out) = selftest(1, 0);
    let r = r.expect("run");
    assert_eq!(r.status, 0);
    let text = String::from_utf8(out.lock().expect("lock").clone()).expect("utf8");
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
