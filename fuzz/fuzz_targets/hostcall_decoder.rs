//! The VMM side of the host-call queue (`vcpu::hostcall`) against a guest
//! that controls every byte of guest memory: the ring's `TAIL`, each slot's
//! state, operation, handle, address, length and offset, and the payloads.
//!
//! The requests are served by `vcpu::hostcall::serve_posted` (the I/O
//! thread's loop, run once) against a fake `HostOps` that touches no host
//! file and checks that every buffer it is handed lies inside guest RAM.
//! Never panics; never hands the host an out-of-range buffer.

#![no_main]

use std::cell::Cell;
use std::sync::atomic::Ordering;

use guest_kernel::abi::hostcall::{gpa, queue as q, MIN_RAM};
use guest_kernel::abi::linux::{Stat, TERMIOS_SIZE};
use guest_kernel::abi::{Errno, KResult};
use guest_kernel::boot::ExecRequest;
use guest_kernel::platform::{HostHandle, HostOps, HostStat};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use memory::GuestRam;

/// A host that does no I/O. It answers by the handle, so the fuzzer picks
/// full, short, empty and failed transfers.
struct FakeHost {
    base: usize,
    size: usize,
    calls: Cell<u32>,
}

impl FakeHost {
    /// The buffer must be a view of guest RAM.
    fn check_guest(&self, what: &str, buf: &[u8]) {
        let p = buf.as_ptr() as usize;
        assert!(
            p >= self.base
                && p.checked_add(buf.len())
                    .is_some_and(|e| e <= self.base + self.size),
            "{what}: buffer {p:#x}+{:#x} outside guest RAM {:#x}+{:#x}",
            buf.len(),
            self.base,
            self.size
        );
        assert!(
            buf.len() as u64 <= q::IO_MAX,
            "{what}: {} bytes > IO_MAX",
            buf.len()
        );
        self.calls.set(self.calls.get() + 1);
    }

    fn transfer(&self, h: HostHandle, len: usize) -> KResult<usize> {
        match h.0 % 4 {
            0 => Ok(len),
            // Short, but not so short that stdout's write-all loop takes
            // millions of rounds over a large buffer.
            1 => Ok((len / 2).max(len.min(7))),
            2 => Ok(0),
            _ => Err(Errno::EIO),
        }
    }
}

/// Fill at most a few bytes, so a 1 GiB request stays cheap.
fn fill(buf: &mut [u8], n: usize) {
    let n = n.min(64);
    buf[..n].fill(b'r');
}

impl HostOps for FakeHost {
    fn open(&self, path: &[u8]) -> KResult<HostHandle> {
        assert!(path.len() as u64 <= q::PATH_MAX);
        self.calls.set(self.calls.get() + 1);
        match path.first() {
            Some(b'/') => Ok(HostHandle(path.len() as u32)),
            _ => Err(Errno::ENOENT),
        }
    }
    fn read(&self, h: HostHandle, buf: &mut [u8]) -> KResult<usize> {
        self.check_guest("read", buf);
        let n = self.transfer(h, buf.len())?;
        fill(buf, n);
        Ok(n)
    }
    fn pread(&self, h: HostHandle, buf: &mut [u8], _offset: u64) -> KResult<usize> {
        self.check_guest("pread", buf);
        let n = self.transfer(h, buf.len())?;
        fill(buf, n);
        Ok(n)
    }
    fn write(&self, h: HostHandle, data: &[u8]) -> KResult<usize> {
        self.check_guest("write", data);
        self.transfer(h, data.len())
    }
    fn fstat(&self, h: HostHandle) -> KResult<HostStat> {
        self.calls.set(self.calls.get() + 1);
        match h.0 % 2 {
            0 => Ok(Stat {
                st_size: 4096,
                ..Stat::default()
            }),
            _ => Err(Errno::EBADF),
        }
    }
    fn tcgets(&self, h: HostHandle) -> KResult<[u8; TERMIOS_SIZE]> {
        self.calls.set(self.calls.get() + 1);
        match h.0 % 2 {
            0 => Ok([0x55; TERMIOS_SIZE]),
            _ => Err(Errno::ENOTTY),
        }
    }
    fn readlink(&self, path: &[u8], buf: &mut [u8]) -> KResult<usize> {
        assert!(path.len() as u64 <= q::PATH_MAX);
        assert!(buf.len() as u64 <= q::PATH_MAX);
        self.calls.set(self.calls.get() + 1);
        let target = b"/some/where";
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        let n = target.len().min(buf.len());
        buf[..n].copy_from_slice(&target[..n]);
        Ok(n)
    }
    fn take_exec(&self, buf: &mut [u8]) -> KResult<usize> {
        self.check_guest("take_exec", buf);
        let req = ExecRequest {
            id: 1,
            args: vec![b"/bin/true".to_vec()],
            ..ExecRequest::default()
        }
        .encode();
        match buf.get_mut(..req.len()) {
            Some(b) => {
                b.copy_from_slice(&req);
                Ok(req.len())
            }
            None => Err(Errno::EINVAL),
        }
    }
    fn exec_exited(&self, _id: u32, _code: i32) {
        self.calls.set(self.calls.get() + 1);
    }
    fn getdents64(&self, h: HostHandle, buf: &mut [u8]) -> KResult<usize> {
        self.check_guest("getdents64", buf);
        let n = self.transfer(h, buf.len().min(32))?;
        fill(buf, n);
        Ok(n)
    }
    fn close(&self, _h: HostHandle) {
        self.calls.set(self.calls.get() + 1);
    }
}

const RAM: u64 = MIN_RAM;

/// An address a guest would find interesting.
fn addr(u: &mut Unstructured<'_>) -> Result<u64> {
    let arena = gpa::QUEUE + q::ARENA;
    Ok(match u.int_in_range(0u8..=6)? {
        0 => u.arbitrary()?,
        1 => arena + u64::from(u.arbitrary::<u16>()?),
        2 => RAM - u64::from(u.arbitrary::<u16>()?),
        3 => u64::from(u.arbitrary::<u32>()?),
        4 => u64::MAX - u64::from(u.arbitrary::<u16>()?),
        // Inside the queue itself: a buffer over the slots.
        5 => gpa::QUEUE + u64::from(u.arbitrary::<u16>()?),
        _ => RAM + u64::from(u.arbitrary::<u16>()?),
    })
}

/// A length a guest would find interesting, for a buffer at `a`.
fn len(u: &mut Unstructured<'_>, a: u64) -> Result<u64> {
    let near = |u: &mut Unstructured<'_>, v: u64| -> Result<u64> {
        Ok(v.wrapping_add(u.int_in_range(0u64..=2)?).wrapping_sub(1))
    };
    Ok(match u.int_in_range(0u8..=8)? {
        0 => u.arbitrary()?,
        1 => u64::from(u.arbitrary::<u16>()?),
        2 => {
            let v = RAM.wrapping_sub(a);
            near(u, v)?
        }
        3 => near(u, q::IO_MAX)?,
        4 => near(u, q::PATH_MAX)?,
        5 => near(u, q::LOG_MAX)?,
        6 => near(u, 144)?,
        7 => near(u, TERMIOS_SIZE as u64)?,
        _ => u64::MAX - u64::from(u.arbitrary::<u8>()?),
    })
}

/// Guest RAM, all zero. One mapping is reused: dropping the pages the last
/// input touched is much cheaper than a new 32 MiB mapping each time.
fn fresh_ram() -> GuestRam {
    thread_local! {
        static RAM_: GuestRam = GuestRam::new(RAM).expect("guest RAM");
    }
    RAM_.with(|ram| {
        // SAFETY: the range is exactly the private anonymous mapping behind
        // `ram`, and no reference into it is alive between inputs;
        // MADV_DONTNEED makes it read back as zeros.
        let rc = unsafe {
            libc::madvise(
                ram.host_base() as *mut libc::c_void,
                RAM as usize,
                libc::MADV_DONTNEED,
            )
        };
        assert_eq!(rc, 0, "madvise");
        ram.clone()
    })
}

fn slot(seq: u64) -> u64 {
    gpa::QUEUE + q::SLOTS + (seq % q::NR_SLOTS) * q::SLOT_SIZE
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let ram = fresh_ram();
    let tail: u64 = match u.int_in_range(0u8..=3)? {
        0 => 0,
        1 => u64::from(u.arbitrary::<u8>()?),
        2 => u64::MAX - u64::from(u.arbitrary::<u8>()?),
        _ => u.arbitrary()?,
    };
    ram.store_u64(gpa::QUEUE + q::TAIL, tail, Ordering::Relaxed)
        .unwrap();
    ram.store_u32(
        gpa::QUEUE + q::GUEST_WAITING,
        u.arbitrary()?,
        Ordering::Relaxed,
    )
    .unwrap();
    let nreq = u.int_in_range(1u16..=q::NR_SLOTS as u16)?;
    let mut posted = 0u64;
    for i in 0..u64::from(nreq) {
        if u.is_empty() {
            break;
        }
        let s = slot(tail.wrapping_add(i));
        let state = match u.int_in_range(0u8..=7)? {
            0..=4 => q::STATE_POSTED,
            5 => q::STATE_BUSY,
            6 => u32::from(u.int_in_range(0u8..=5)?),
            _ => u.arbitrary()?,
        };
        let op = match u.int_in_range(0u8..=7)? {
            0 => u.arbitrary()?,
            _ => u32::from(u.int_in_range(0u8..=20)?),
        };
        let handle: u32 = match u.int_in_range(0u8..=3)? {
            0 => u.arbitrary()?,
            _ => u32::from(u.int_in_range(0u8..=9)?),
        };
        let a = addr(&mut u)?;
        let l = len(&mut u, a)?;
        let off = match u.int_in_range(0u8..=2)? {
            0 => u.arbitrary()?,
            1 => u64::from(u.arbitrary::<u8>()?),
            _ => l.wrapping_add(u.int_in_range(0u64..=2)?).wrapping_sub(1),
        };
        ram.store_u32(s + q::SLOT_OP, op, Ordering::Relaxed)
            .unwrap();
        ram.store_u32(s + q::SLOT_HANDLE, handle, Ordering::Relaxed)
            .unwrap();
        ram.store_u64(s + q::SLOT_ADDR, a, Ordering::Relaxed)
            .unwrap();
        ram.store_u64(s + q::SLOT_LEN, l, Ordering::Relaxed)
            .unwrap();
        ram.store_u64(s + q::SLOT_OFFSET, off, Ordering::Relaxed)
            .unwrap();
        ram.store_u32(s + q::SLOT_STATE, state, Ordering::Relaxed)
            .unwrap();
        if state == q::STATE_POSTED && posted == i {
            posted += 1;
        }
    }
    // Payload bytes (paths, log text, write data) in the arena.
    let rest = u.take_rest();
    let rest = &rest[..rest.len().min(q::ARENA_SIZE as usize)];
    ram.write_bytes(gpa::QUEUE + q::ARENA, rest).unwrap();

    let host = FakeHost {
        base: ram.host_base() as usize,
        size: RAM as usize,
        calls: Cell::new(0),
    };
    let served = vcpu::hostcall::serve_posted(&ram, &host);
    // Slots are served strictly in order, up to the first one not posted
    // (a request may overwrite later slots: then at most all of the ring).
    assert!(
        served >= posted.min(1) && served <= q::NR_SLOTS,
        "{served} of {posted}"
    );
    let new_tail = ram
        .load_u64(gpa::QUEUE + q::TAIL, Ordering::Relaxed)
        .unwrap();
    assert_eq!(new_tail, tail.wrapping_add(served));
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
