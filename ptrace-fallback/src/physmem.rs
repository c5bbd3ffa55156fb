//! The sandbox's "physical" memory: a memfd mapped once into the sentry.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

/// A memfd of fixed size, mapped shared into this process.
#[derive(Debug)]
pub struct PhysMemory {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: u64,
}

// SAFETY: the mapping is plain shared memory owned by this value; all access
// goes through bounds-checked copies, and concurrent writers to the same
// frame are the guest's own race, as on real hardware.
unsafe impl Send for PhysMemory {}
// SAFETY: as above; `&self` methods only perform volatile-free byte copies
// within bounds.
unsafe impl Sync for PhysMemory {}

/// Ranges at least this large are zeroed by punching a hole, which also
/// returns the memory to the host.
const PUNCH_MIN: u64 = 64 * 1024;

/// A fresh read-write shared mapping of `len` bytes of `fd` from `off`,
/// at an address the kernel chooses.
pub fn map_shared(fd: BorrowedFd<'_>, off: u64, len: u64) -> nix::Result<NonNull<u8>> {
    let size = std::num::NonZeroUsize::new(usize::try_from(len).map_err(|_| nix::Error::EINVAL)?)
        .ok_or(nix::Error::EINVAL)?;
    // SAFETY: a new mapping at a kernel-chosen address; nothing else refers
    // to that range.
    let base = unsafe {
        mmap(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE,
            fd,
            i64::try_from(off).map_err(|_| nix::Error::EINVAL)?,
        )?
    };
    Ok(base.cast())
}

/// An unnamed file of `total` bytes on a tmpfs of its own that backs it
/// with huge pages (`huge=always`). A memfd lives on the kernel's internal
/// tmpfs, which follows `shmem_enabled` (`never` here): there, the host's
/// first touch of each 4 KiB page costs about 2.7 µs under PVM, against
/// 0.2 µs a page with 2 MiB pages, and a `python3 -c pass` touches 2,200
/// of them (KVM's guest RAM is anonymous memory with `MADV_HUGEPAGE`, for
/// the same reason). The mount is detached (`fsmount` without
/// `move_mount`): nobody else sees it, and it goes with the file. It needs
/// `CAP_SYS_ADMIN`; without it, a memfd.
fn huge_file(total: u64) -> rustix::io::Result<OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    if std::env::var_os("RINGFENCE_HUGE_MEMORY").is_some_and(|v| v == "0") {
        return Err(rustix::io::Errno::NOSYS);
    }
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "huge", "always")?;
    // Room for the file, rounded up to whole huge pages.
    let size = total.div_ceil(2 << 20) * (2 << 20);
    fsconfig_set_string(&fs, "size", size.to_string())?;
    fsconfig_set_string(&fs, "mode", "0700")?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        // Not noexec: the stubs map application code from it.
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?;
    rustix::fs::openat(
        &mnt,
        ".",
        rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
}

impl PhysMemory {
    /// `len` bytes of memory, and `extra` bytes of the file after them
    /// that the platform keeps for itself (not mapped here).
    pub fn new(len: u64, extra: u64) -> nix::Result<Self> {
        let total = len.checked_add(extra).ok_or(nix::Error::EINVAL)?;
        let fd = match huge_file(total) {
            Ok(fd) => {
                log::debug!("sandbox memory: a file on a huge-page tmpfs");
                fd
            }
            Err(e) => {
                log::debug!("sandbox memory: a memfd (no huge-page tmpfs: {e})");
                memfd_create(c"ringfence-memory", MFdFlags::MFD_CLOEXEC)?
            }
        };
        nix::unistd::ftruncate(&fd, i64::try_from(total).map_err(|_| nix::Error::EINVAL)?)?;
        let base = map_shared(fd.as_fd(), 0, len)?;
        Ok(PhysMemory { fd, base, len })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Bounds check: `[pa, pa+n)` inside the memory. The sentry only passes
    /// frames it allocated from `phys_range`, so a failure is a sentry bug.
    fn check(&self, pa: u64, n: usize) -> usize {
        let end = pa.checked_add(n as u64);
        assert!(
            matches!(end, Some(e) if e <= self.len),
            "physical access {pa:#x}+{n:#x} outside memory"
        );
        pa as usize
    }

    pub fn read(&self, pa: u64, buf: &mut [u8]) {
        let off = self.check(pa, buf.len());
        // SAFETY: `check` proved the source lies inside our live mapping and
        // `buf` is a distinct, writable host buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.as_ptr().add(off), buf.as_mut_ptr(), buf.len())
        }
    }

    pub fn write(&self, pa: u64, data: &[u8]) {
        let off = self.check(pa, data.len());
        // SAFETY: `check` proved the destination lies inside our live mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(off), data.len())
        }
    }

    /// Run `f` on `[pa, pa+n)` as a mutable slice (a host read lands there
    /// directly).
    pub fn with_slice_mut<R>(&self, pa: u64, n: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let off = self.check(pa, n);
        // SAFETY: `check` proved the range lies inside our live mapping. The
        // stubs that share it are stopped while the sentry serves a call,
        // and the sentry is single-threaded, so nothing else touches these
        // bytes while the slice lives.
        let slice = unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(off), n) };
        f(slice)
    }

    pub fn zero(&self, pa: u64, len: u64) {
        let off = self.check(pa, len as usize);
        if len >= PUNCH_MIN {
            let mode = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
            if nix::fcntl::fallocate(&self.fd, mode, pa as i64, len as i64).is_ok() {
                return;
            }
        }
        // SAFETY: `check` proved the range lies inside our live mapping.
        unsafe { std::ptr::write_bytes(self.base.as_ptr().add(off), 0, len as usize) }
    }
}

impl Drop for PhysMemory {
    fn drop(&mut self) {
        // SAFETY: we created this mapping in `new` and no reference into it
        // outlives `self`.
        let _ = unsafe { munmap(self.base.cast(), self.len as usize) };
    }
}
