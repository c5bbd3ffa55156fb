//! ELF parsing for `execve`: what to map, where, and where to start.

use alloc::vec::Vec;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian as LE;

use crate::abi::linux::TASK_SIZE;
use crate::abi::{Errno, KResult, PAGE_SIZE};
use crate::platform::Prot;

/// Where a position-independent executable is loaded (Linux's
/// `ELF_ET_DYN_BASE` without randomisation).
pub const PIE_BASE: u64 = 0x5555_5555_4000;

/// A `PT_LOAD` segment, already relocated by the load bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub prot: Prot,
}

/// What the loader needs to know about an executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// Entry point, relocated.
    pub entry: u64,
    /// The bias added to every virtual address (0 for `ET_EXEC`).
    pub bias: u64,
    /// Address of the program headers in the loaded image, if mapped.
    pub phdr: Option<u64>,
    pub phnum: u16,
    pub phentsize: u16,
    pub segments: Vec<LoadSegment>,
    /// `PT_INTERP`, the dynamic loader's path, without the NUL.
    pub interp: Option<Vec<u8>>,
    /// The highest address of any segment (the program break starts above).
    pub end: u64,
}

fn prot_of(flags: elf::ProgramFlags) -> Prot {
    Prot {
        read: flags.0 & elf::PF_R.0 != 0,
        write: flags.0 & elf::PF_W.0 != 0,
        exec: flags.0 & elf::PF_X.0 != 0,
    }
}

/// Parse an x86-64 executable, placing a position-independent one at
/// [`PIE_BASE`]. Every malformed or unsupported input is `ENOEXEC`; nothing
/// here trusts the file.
pub fn parse(data: &[u8]) -> KResult<ElfInfo> {
    parse_at(data, PIE_BASE)
}

/// As [`parse`], with `dyn_bias` added to the addresses of an `ET_DYN` file.
pub fn parse_at(data: &[u8], dyn_bias: u64) -> KResult<ElfInfo> {
    parse_head(data, data.len() as u64, dyn_bias)
}

/// As [`parse_at`], from the first bytes (`head`) of a file of `file_len`
/// bytes: the headers and `PT_INTERP` must lie in `head`, the segments in
/// the file.
pub fn parse_head(data: &[u8], file_len: u64, dyn_bias: u64) -> KResult<ElfInfo> {
    let hdr = elf::FileHeader64::<LE>::parse(data).map_err(|_| Errno::ENOEXEC)?;
    let e = hdr.endian().map_err(|_| Errno::ENOEXEC)?;
    if hdr.e_machine(e) != elf::EM_X86_64 {
        return Err(Errno::ENOEXEC);
    }
    let bias = match hdr.e_type(e) {
        elf::ET_EXEC => 0,
        elf::ET_DYN => dyn_bias,
        _ => return Err(Errno::ENOEXEC),
    };
    let phdrs = hdr.program_headers(e, data).map_err(|_| Errno::ENOEXEC)?;
    if phdrs.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    let mut segments = Vec::new();
    let mut interp = None;
    let mut phdr_vaddr = None;
    let mut end = 0u64;
    let phoff = hdr.e_phoff(e);
    for ph in phdrs {
        match ph.p_type(e) {
            elf::PT_LOAD => {
                let (vaddr, memsz) = (ph.p_vaddr(e), ph.p_memsz(e));
                let (offset, filesz) = (ph.p_offset(e), ph.p_filesz(e));
                if memsz == 0 {
                    continue;
                }
                let vaddr = vaddr.checked_add(bias).ok_or(Errno::ENOEXEC)?;
                let seg_end = vaddr.checked_add(memsz).ok_or(Errno::ENOEXEC)?;
                let file_end = offset.checked_add(filesz).ok_or(Errno::ENOEXEC)?;
                if filesz > memsz
                    || file_end > file_len
                    || seg_end > TASK_SIZE
                    || (vaddr < PAGE_SIZE && dyn_bias != 0)
                {
                    return Err(Errno::ENOEXEC);
                }
                // The program headers are visible if a segment maps them.
                let phsize = u64::from(hdr.e_phnum(e)) * u64::from(hdr.e_phentsize(e));
                if phoff >= offset && phoff.saturating_add(phsize) <= file_end {
                    phdr_vaddr.get_or_insert(vaddr + (phoff - offset));
                }
                end = end.max(seg_end);
                segments.push(LoadSegment {
                    vaddr,
                    memsz,
                    offset,
                    filesz,
                    prot: prot_of(ph.p_flags(e)),
                });
            }
            elf::PT_INTERP => {
                let bytes = ph.data(e, data).map_err(|_| Errno::ENOEXEC)?;
                let path = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
                if path.is_empty() {
                    return Err(Errno::ENOEXEC);
                }
                interp = Some(path.to_vec());
            }
            elf::PT_PHDR => {
                phdr_vaddr = Some(ph.p_vaddr(e).wrapping_add(bias));
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    let entry = hdr.e_entry(e).checked_add(bias).ok_or(Errno::ENOEXEC)?;
    if !segments
        .iter()
        .any(|s| s.prot.exec && (s.vaddr..s.vaddr + s.memsz).contains(&entry))
    {
        return Err(Errno::ENOEXEC);
    }
    Ok(ElfInfo {
        entry,
        bias,
        phdr: phdr_vaddr,
        phnum: hdr.e_phnum(e),
        phentsize: hdr.e_phentsize(e),
        segments,
        interp,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A minimal ELF: one RX `PT_LOAD` covering the headers, entry inside it.
    pub(crate) fn tiny_elf(e_type: u16, vaddr: u64) -> Vec<u8> {
        let mut f = vec![0u8; 0x200];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1; // version
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&(vaddr + 0x100).to_le_bytes()); // entry
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        f[56..58].copy_from_slice(&1u16.to_le_bytes()); // phnum
        let ph = &mut f[64..120];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R|X
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
        ph[32..40].copy_from_slice(&0x200u64.to_le_bytes()); // filesz
        ph[40..48].copy_from_slice(&0x1000u64.to_le_bytes()); // memsz
        ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
        f
    }

    #[test]
    fn parses_static_exec() {
        let info = parse(&tiny_elf(2, 0x400000)).unwrap();
        assert_eq!(info.entry, 0x400100);
        assert_eq!(info.bias, 0);
        assert_eq!(info.phdr, Some(0x400040));
        assert_eq!(info.segments.len(), 1);
        assert_eq!(
            info.segments[0].prot,
            Prot {
                read: true,
                write: false,
                exec: true
            }
        );
        assert_eq!(info.end, 0x401000);
        assert!(info.interp.is_none());
    }

    #[test]
    fn pie_is_biased() {
        let info = parse(&tiny_elf(3, 0)).unwrap();
        assert_eq!(info.phdr, Some(PIE_BASE + 0x40));
        let info = parse(&tiny_elf(3, 0x1000)).unwrap();
        assert_eq!(info.entry, PIE_BASE + 0x1100);
        assert_eq!(info.segments[0].vaddr, PIE_BASE + 0x1000);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(b"#!/bin/sh\n"), Err(Errno::ENOEXEC));
        assert_eq!(parse(&[]), Err(Errno::ENOEXEC));
        let mut f = tiny_elf(2, 0x400000);
        f[18] = 3; // EM_386
        assert_eq!(parse(&f), Err(Errno::ENOEXEC));
        let mut f = tiny_elf(2, 0x400000);
        f[64 + 32] = 0xff; // filesz beyond the file
        f[64 + 33] = 0xff;
        assert_eq!(parse(&f), Err(Errno::ENOEXEC));
        let mut f = tiny_elf(2, 0x400000);
        f[24..32].copy_from_slice(&0x900000u64.to_le_bytes()); // entry outside
        assert_eq!(parse(&f), Err(Errno::ENOEXEC));
        let mut f = tiny_elf(2, 0x7fff_ffff_f000);
        f[24..32].copy_from_slice(&0x7fff_ffff_f100u64.to_le_bytes());
        assert_eq!(parse(&f), Err(Errno::ENOEXEC));
    }

    #[test]
    fn truncations_never_panic() {
        let f = tiny_elf(2, 0x400000);
        for n in 0..f.len() {
            let _ = parse(&f[..n]);
        }
    }
}
