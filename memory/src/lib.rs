//! Host side of guest memory.
//!
//! Guest RAM is one anonymous, `MAP_NORESERVE` region at GPA 0 (the host
//! commits only the pages the guest touches), held as a vm-memory
//! [`GuestMemoryMmap`]. Every access on behalf of a hypercall goes through
//! vm-memory, which bounds-checks the guest address and length; nothing
//! here hands out raw host pointers to safe code.
//!
//! The fixed low layout of guest-physical memory is the KVM platform ABI in
//! `guest_kernel::abi::hostcall`.

use std::sync::atomic::Ordering;

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestRegionMmap, VolatileMemory, VolatileSlice,
};

pub use vm_memory;

/// The guest memory type of the sandbox.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;

/// Default guest RAM: 512 MiB.
pub const DEFAULT_MEM_BYTES: u64 = 512 << 20;

/// Failure to create or access guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Guest RAM size {0:#x} is not a multiple of 2 MiB within the supported range.
    #[error("guest RAM size {0:#x} is not a multiple of 2 MiB between {min} and {max} MiB", min = MIN_MIB, max = MAX_MIB)]
    BadSize(u64),
    /// The mmap of guest RAM failed.
    #[error("cannot map {size:#x} bytes of guest RAM: {source}")]
    Mmap {
        size: u64,
        source: vm_memory::mmap::MmapRegionError,
    },
    /// The region collection could not be built.
    #[error("cannot build guest memory: {0}")]
    Collection(String),
    /// A guest range is outside guest RAM.
    #[error("guest range {gpa:#x}+{len:#x} is outside guest RAM")]
    OutOfRange { gpa: u64, len: u64 },
}

const MIN_MIB: u64 = 32;
const MAX_MIB: u64 = 15 << 10;

/// Guest RAM.
#[derive(Debug, Clone)]
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: u64,
}

impl GuestRam {
    /// Map `size` bytes of guest RAM at GPA 0, `MAP_NORESERVE`.
    pub fn new(size: u64) -> Result<GuestRam, MemoryError> {
        if !size.is_multiple_of(2 << 20) || !(MIN_MIB << 20..=MAX_MIB << 20).contains(&size) {
            return Err(MemoryError::BadSize(size));
        }
        let len = usize::try_from(size).map_err(|_| MemoryError::BadSize(size))?;
        let region = vm_memory::mmap::MmapRegionBuilder::new(len)
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_NORESERVE)
            .build()
            .map_err(|source| MemoryError::Mmap { size, source })?;
        // SAFETY: advice only, on the mapping just made, of its own length.
        unsafe { libc::madvise(region.as_ptr().cast(), len, libc::MADV_HUGEPAGE) };
        let region: GuestRegionMmap<()> = GuestRegionMmap::new(region, GuestAddress(0))
            .ok_or_else(|| MemoryError::Collection("region wraps the address space".into()))?;
        let mem = GuestMemoryMmap::from_regions(vec![region])
            .map_err(|e| MemoryError::Collection(e.to_string()))?;
        Ok(GuestRam { mem, size })
    }

    /// The vm-memory view.
    pub fn mem(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host virtual address of GPA 0, for `KVM_SET_USER_MEMORY_REGION`.
    pub fn host_base(&self) -> u64 {
        let region = self.mem.iter().next().expect("guest RAM has one region");
        region.as_ptr() as u64
    }

    /// Whether `[gpa, gpa+len)` lies inside guest RAM.
    pub fn check(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        match gpa.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(MemoryError::OutOfRange { gpa, len }),
        }
    }

    /// A bounds-checked volatile view of `[gpa, gpa+len)`.
    pub fn slice(&self, gpa: u64, len: u64) -> Result<VolatileSlice<'_, ()>, MemoryError> {
        self.check(gpa, len)?;
        let n = usize::try_from(len).map_err(|_| MemoryError::OutOfRange { gpa, len })?;
        self.mem
            .get_slice(GuestAddress(gpa), n)
            .map_err(|_| MemoryError::OutOfRange { gpa, len })
    }

    /// Read a little-endian `u64`.
    pub fn read_u64(&self, gpa: u64) -> Result<u64, MemoryError> {
        self.mem
            .read_obj::<u64>(GuestAddress(gpa))
            .map_err(|_| MemoryError::OutOfRange { gpa, len: 8 })
    }

    /// Write a little-endian `u64`.
    pub fn write_u64(&self, gpa: u64, v: u64) -> Result<(), MemoryError> {
        self.mem
            .write_obj(v, GuestAddress(gpa))
            .map_err(|_| MemoryError::OutOfRange { gpa, len: 8 })
    }

    /// Copy bytes into guest memory.
    pub fn write_bytes(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .map_err(|_| MemoryError::OutOfRange {
                gpa,
                len: data.len() as u64,
            })
    }

    /// Copy bytes out of guest memory.
    pub fn read_bytes(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|_| MemoryError::OutOfRange {
                gpa,
                len: buf.len() as u64,
            })
    }

    /// Atomic load of a `u32` shared with the guest.
    pub fn load_u32(&self, gpa: u64, order: Ordering) -> Result<u32, MemoryError> {
        self.mem
            .load(GuestAddress(gpa), order)
            .map_err(|_| MemoryError::OutOfRange { gpa, len: 4 })
    }

    /// Atomic store of a `u32` shared with the guest.
    pub fn store_u32(&self, gpa: u64, v: u32, order: Ordering) -> Result<(), MemoryError> {
        self.mem
            .store(v, GuestAddress(gpa), order)
            .map_err(|_| MemoryError::OutOfRange { gpa, len: 4 })
    }

    /// Atomic compare-and-exchange of an aligned `u32` shared with the
    /// guest: `Ok(Ok(old))` if it held `old` and now holds `new`,
    /// `Ok(Err(actual))` if it held something else.
    pub fn cas_u32(
        &self,
        gpa: u64,
        old: u32,
        new: u32,
        order: Ordering,
    ) -> Result<Result<u32, u32>, MemoryError> {
        let slice = self.slice(gpa, 4)?;
        let cell = slice
            .get_atomic_ref::<std::sync::atomic::AtomicU32>(0)
            .map_err(|_| MemoryError::OutOfRange { gpa, len: 4 })?;
        Ok(cell.compare_exchange(old, new, order, Ordering::Acquire))
    }

    /// Atomic load of a `u64` shared with the guest.
    pub fn load_u64(&self, gpa: u64, order: Ordering) -> Result<u64, MemoryError> {
        self.mem
            .load(GuestAddress(gpa), order)
            .map_err(|_| MemoryError::OutOfRange { gpa, len: 8 })
    }

    /// Atomic store of a `u64` shared with the guest.
    pub fn store_u64(&self, gpa: u64, v: u64, order: Ordering) -> Result<(), MemoryError> {
        self.mem
            .store(v, GuestAddress(gpa), order)
            .map_err(|_| MemoryError::OutOfRange { gpa, len: 8 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_sizes() {
        assert!(matches!(
            GuestRam::new(1 << 20),
            Err(MemoryError::BadSize(_))
        ));
        assert!(matches!(
            GuestRam::new((64 << 20) + 4096),
            Err(MemoryError::BadSize(_))
        ));
    }

    #[test]
    fn bounds_are_checked() {
        let ram = GuestRam::new(64 << 20).expect("map 64 MiB");
        assert_eq!(ram.size(), 64 << 20);
        ram.write_u64(0x1000, 42).expect("in range");
        assert_eq!(ram.read_u64(0x1000).expect("in range"), 42);
        assert!(ram.slice((64 << 20) - 8, 16).is_err());
        assert!(ram.slice(u64::MAX - 4, 8).is_err());
        assert!(ram.read_u64((64 << 20) - 4).is_err());
        ram.store_u32(0x2000, 7, Ordering::Release)
            .expect("in range");
        assert_eq!(
            ram.load_u32(0x2000, Ordering::Acquire).expect("in range"),
            7
        );
        assert_eq!(
            ram.cas_u32(0x2000, 7, 9, Ordering::AcqRel).ok(),
            Some(Ok(7))
        );
        assert_eq!(
            ram.cas_u32(0x2000, 7, 1, Ordering::AcqRel).ok(),
            Some(Err(9))
        );
        assert!(
            ram.cas_u32(0x2002, 9, 1, Ordering::AcqRel).is_err(),
            "unaligned"
        );
        assert!(ram.cas_u32((64 << 20) - 2, 0, 1, Ordering::AcqRel).is_err());
    }
}
