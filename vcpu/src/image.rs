//! Checks on a sentry image before it is loaded: a corrupt image must end
//! with a clear error, not a guest that jumps into garbage.

use crate::abi::{gpa, KERNEL_BASE};
use crate::VcpuError;

/// What the VMM needs to know about a valid image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Entry point (kernel virtual address).
    pub entry: u64,
    /// First GPA past every loadable segment (including `.bss`).
    pub end: u64,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

fn bad(why: &'static str) -> VcpuError {
    VcpuError::BadImage(why)
}

/// Validate `elf` as a sentry image for a guest with `ram` bytes.
pub fn inspect(elf: &[u8], ram: u64) -> Result<ImageInfo, VcpuError> {
    if elf.get(0..4) != Some(b"\x7fELF".as_slice()) {
        return Err(bad("not an ELF file"));
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(bad("not a little-endian ELF64 file"));
    }
    if u16_at(elf, 16) != Some(2) || u16_at(elf, 18) != Some(62) {
        return Err(bad("not an x86-64 executable"));
    }
    let entry = u64_at(elf, 24).ok_or(bad("truncated header"))?;
    let phoff = u64_at(elf, 32).ok_or(bad("truncated header"))?;
    let phentsize = u16_at(elf, 54).ok_or(bad("truncated header"))?;
    let phnum = u16_at(elf, 56).ok_or(bad("truncated header"))?;
    if phentsize != 56 || phnum == 0 || phnum > 64 {
        return Err(bad("bad program header table"));
    }
    let mut end = 0u64;
    let mut entry_ok = false;
    for i in 0..usize::from(phnum) {
        let o = usize::try_from(phoff).map_err(|_| bad("bad program header offset"))? + i * 56;
        let p_type = u32_at(elf, o).ok_or(bad("truncated program headers"))?;
        if p_type != 1 {
            continue;
        }
        let offset = u64_at(elf, o + 8).ok_or(bad("truncated program headers"))?;
        let vaddr = u64_at(elf, o + 16).ok_or(bad("truncated program headers"))?;
        let paddr = u64_at(elf, o + 24).ok_or(bad("truncated program headers"))?;
        let filesz = u64_at(elf, o + 32).ok_or(bad("truncated program headers"))?;
        let memsz = u64_at(elf, o + 40).ok_or(bad("truncated program headers"))?;
        let file_end = offset.checked_add(filesz).ok_or(bad("segment overflows"))?;
        if file_end > elf.len() as u64 || filesz > memsz {
            return Err(bad("segment extends past the end of the file"));
        }
        let seg_end = paddr.checked_add(memsz).ok_or(bad("segment overflows"))?;
        if paddr < gpa::IMAGE || seg_end > ram || vaddr != KERNEL_BASE.wrapping_add(paddr) {
            return Err(bad(
                "segment outside the image area or not linked at KERNEL_BASE + p_paddr",
            ));
        }
        if entry >= vaddr && entry < vaddr.wrapping_add(memsz) {
            entry_ok = true;
        }
        end = end.max(seg_end);
    }
    if !entry_ok {
        return Err(bad("entry point outside every loadable segment"));
    }
    Ok(ImageInfo { entry, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_image_is_valid() {
        let info = inspect(crate::SENTRY_IMAGE, 512 << 20).expect("embedded image");
        assert!(info.entry >= KERNEL_BASE + gpa::IMAGE);
        assert!(info.end > gpa::IMAGE);
    }

    #[test]
    fn corrupt_images_are_rejected() {
        assert!(inspect(b"", 512 << 20).is_err());
        assert!(inspect(b"\x7fELF\x02\x01", 512 << 20).is_err());
        let mut img = crate::SENTRY_IMAGE.to_vec();
        img[24..32].copy_from_slice(&0x1234u64.to_le_bytes()); // entry
        assert!(matches!(
            inspect(&img, 512 << 20),
            Err(VcpuError::BadImage(_))
        ));
        let img = &crate::SENTRY_IMAGE[..200];
        assert!(inspect(img, 512 << 20).is_err());
        // Too little RAM for the image.
        assert!(inspect(crate::SENTRY_IMAGE, 0x200000).is_err());
    }
}
