//! The executable behind an `execve`: opened once, its headers read, and
//! its segments mapped from the file, so pages fault in when used (as
//! Linux's `elf_map`) instead of the whole file being read and copied in.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;

use super::elf::ElfInfo;
use super::{fail, LoadError};
use crate::abi::linux::{S_IFMT, S_IFREG};
use crate::abi::{page_down, page_up, Errno, PAGE_SIZE};
use crate::fs::vfs::Node;
use crate::fs::{File, TmpFile};
use crate::kernel::Kernel;
use crate::mm::{FileBacking, FrameAllocator, MmStruct, Vma, VmaKind};
use crate::platform::{HostOps, Platform, Prot};

/// Bytes read up front: the ELF header, the program headers and the
/// `PT_INTERP` path of any ordinary binary, and any `#!` line.
const HEAD_BYTES: u64 = 64 * 1024;

/// An opened executable.
#[derive(Debug)]
pub struct ExecFile {
    pub file: Arc<File>,
    /// The first `HEAD_BYTES` (or the whole file, if smaller).
    pub head: Vec<u8>,
    pub size: u64,
}

impl ExecFile {
    /// Let go of the file (its mappings keep their own reference).
    pub fn release<P: Platform>(self, plat: &P) {
        crate::syscalls::io::release_file_plat(plat, self.file);
    }

    /// `len` bytes at `off`, read in full (short only at the end of file).
    pub fn bytes<P: Platform>(&self, plat: &P, off: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        let mut buf = vec![0u8; len as usize];
        let mut got = 0;
        while got < buf.len() {
            match crate::fs::read_at(plat, &self.file, &mut buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(fail(e, "read error")),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }
}

impl<P: Platform> Kernel<'_, P> {
    /// Open `path` of the container for execution: a regular file with an
    /// execute bit, through the sentry's namespace (so programs written
    /// into the sandbox run too).
    pub(super) fn open_exec(&self, path: &[u8]) -> Result<ExecFile, LoadError> {
        let path = crate::syscalls::dir::normalize(path);
        let node = self
            .vfs
            .lookup(self.plat, &path, true)
            .map_err(|e| fail(e, "cannot open"))?;
        let (file, st) = match node {
            Node::Tmp { fs, ino, .. } => {
                let st = fs.stat(ino).map_err(|e| fail(e, "cannot stat"))?;
                let file = File::Tmpfs(TmpFile::new(fs, ino, 0, path.clone()));
                (file, st)
            }
            Node::Host(p) => {
                let host = self.plat.host();
                let handle = host
                    .open(&self.vfs.host_path(&p))
                    .map_err(|e| fail(e, "cannot open"))?;
                let st = match host.fstat(handle) {
                    Ok(st) => st,
                    Err(e) => {
                        host.close(handle);
                        return Err(fail(e, "cannot stat"));
                    }
                };
                let file = File::HostFile {
                    handle,
                    offset: AtomicU64::new(0),
                    path: path.clone(),
                    flags: 0,
                    cache: None,
                };
                (file, st)
            }
            _ => return Err(fail(Errno::EACCES, "not a regular file")),
        };
        let file = Arc::new(file);
        let why = if st.st_mode & S_IFMT != S_IFREG {
            Some(fail(Errno::EACCES, "not a regular file"))
        } else if st.st_mode & 0o111 == 0 {
            Some(fail(Errno::EACCES, "permission denied (no execute bit)"))
        } else {
            None
        };
        let mut exe = ExecFile {
            file,
            head: Vec::new(),
            size: st.st_size.max(0) as u64,
        };
        if let Some(why) = why {
            exe.release(self.plat);
            return Err(why);
        }
        match exe.bytes(self.plat, 0, exe.size.min(HEAD_BYTES)) {
            Ok(head) => exe.head = head,
            Err(e) => {
                exe.release(self.plat);
                return Err(e);
            }
        }
        Ok(exe)
    }
}

/// Whether every segment can be mapped from the file on its own pages:
/// file offset and address agree modulo the page size, and no two
/// segments share a page (then each page has one set of permissions).
fn maps_from_file(info: &ElfInfo) -> bool {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for s in &info.segments {
        if s.vaddr % PAGE_SIZE != s.offset % PAGE_SIZE {
            return false;
        }
        let Some(end) = page_up(s.vaddr + s.memsz) else {
            return false;
        };
        ranges.push((page_down(s.vaddr), end));
    }
    ranges.sort_unstable();
    ranges.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// Create the VMAs of an ELF image: from the file where its layout allows
/// (pages fault in from it), else by copying its bytes in.
pub fn map_image<P: Platform>(
    mm: &mut MmStruct<P>,
    plat: &P,
    frames: &mut FrameAllocator,
    info: &ElfInfo,
    exe: &ExecFile,
) -> Result<(), LoadError> {
    if info.end > mm.task_size {
        return Err(fail(
            Errno::ENOEXEC,
            "segments reach above the user address range",
        ));
    }
    for s in &info.segments {
        let end = page_up(s.vaddr + s.memsz).ok_or(fail(Errno::ENOEXEC, "segment overflows"))?;
        if mm.overlaps(page_down(s.vaddr), end) {
            return Err(fail(Errno::EINVAL, "image segments overlap other mappings"));
        }
    }
    if !maps_from_file(info) {
        return copy_image(mm, plat, frames, info, exe);
    }
    let key = Arc::as_ptr(&exe.file) as usize as u64;
    for s in &info.segments {
        let start = page_down(s.vaddr);
        let file_end = s.vaddr + s.filesz;
        let mem_end =
            page_up(s.vaddr + s.memsz).ok_or(fail(Errno::ENOEXEC, "segment overflows"))?;
        // With no bss the last file page is mapped whole, as Linux does;
        // with bss, the partial page is private and zeroed past the data.
        let file_pages_end = if s.memsz == s.filesz {
            mem_end
        } else {
            page_down(file_end)
        };
        if file_pages_end > start {
            let vma = Vma {
                start,
                end: file_pages_end,
                prot: s.prot,
                kind: VmaKind::Image,
                shared: false,
                backing: Some(FileBacking {
                    key,
                    offset: page_down(s.offset),
                }),
            };
            mm.insert_file_vma(vma, exe.file.clone());
        }
        if mem_end > file_pages_end {
            mm.insert_vma(Vma {
                start: file_pages_end,
                end: mem_end,
                prot: s.prot,
                kind: VmaKind::Image,
                shared: false,
                backing: None,
            });
            if s.filesz > 0 && file_end > file_pages_end {
                let tail_off = s.offset + (file_pages_end - s.vaddr);
                let bytes = exe.bytes(plat, tail_off, file_end - file_pages_end)?;
                mm.write_force(plat, frames, file_pages_end, &bytes)?;
            }
        }
    }
    Ok(())
}

/// The fallback for unusual layouts: one VMA per run of pages with the
/// union of the permissions of the segments on them, and the file's bytes
/// copied in.
fn copy_image<P: Platform>(
    mm: &mut MmStruct<P>,
    plat: &P,
    frames: &mut FrameAllocator,
    info: &ElfInfo,
    exe: &ExecFile,
) -> Result<(), LoadError> {
    let mut page_prot: BTreeMap<u64, Prot> = BTreeMap::new();
    for s in &info.segments {
        let end = page_up(s.vaddr + s.memsz).ok_or(fail(Errno::ENOEXEC, "segment overflows"))?;
        for page in (page_down(s.vaddr)..end).step_by(PAGE_SIZE as usize) {
            let p = page_prot.entry(page).or_insert(Prot::NONE);
            *p = Prot {
                read: p.read || s.prot.read,
                write: p.write || s.prot.write,
                exec: p.exec || s.prot.exec,
            };
        }
    }
    let mut run: Option<Vma> = None;
    for (page, prot) in page_prot {
        match run.as_mut() {
            Some(v) if v.end == page && v.prot == prot => v.end += PAGE_SIZE,
            _ => {
                if let Some(v) = run.take() {
                    mm.insert_vma(v);
                }
                run = Some(Vma {
                    start: page,
                    end: page + PAGE_SIZE,
                    prot,
                    kind: VmaKind::Image,
                    shared: false,
                    backing: None,
                });
            }
        }
    }
    if let Some(v) = run {
        mm.insert_vma(v);
    }
    for s in &info.segments {
        let bytes = exe.bytes(plat, s.offset, s.filesz)?;
        if (bytes.len() as u64) < s.filesz {
            return Err(fail(
                Errno::ENOEXEC,
                "the file is shorter than its segments",
            ));
        }
        mm.write_force(plat, frames, s.vaddr, &bytes)?;
    }
    Ok(())
}
