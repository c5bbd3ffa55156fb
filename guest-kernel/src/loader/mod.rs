//! `execve`'s loader: read an ELF from the container, map it, build the stack.

pub mod elf;
pub mod image;
pub mod stack;
pub mod vdso;

use alloc::vec;
use alloc::vec::Vec;

use crate::abi::linux::*;
use crate::abi::{page_down, page_up, Errno, PAGE_SIZE};
use crate::kernel::Kernel;
use crate::mm::{Vma, VmaKind};
use crate::platform::{HostOps, Platform, Prot};
use crate::task::MmId;

/// Default and maximum size of the main thread's stack reservation.
pub const DEFAULT_STACK: u64 = 8 << 20;
pub const MAX_STACK: u64 = 1 << 30;
/// Gap kept between the stack reservation and the mmap area.
const STACK_GAP: u64 = 128 << 20;

/// Where a loaded program starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub rip: u64,
    pub rsp: u64,
}

/// Nested `#!` interpreters allowed (Linux allows 4 levels of binfmt).
const MAX_INTERP_DEPTH: usize = 4;

/// Parse a `#!` line: the interpreter and its optional single argument.
pub fn parse_shebang(data: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let rest = data.strip_prefix(b"#!")?;
    let line = rest.split(|b| *b == b'\n').next()?;
    // Linux reads at most 256 bytes of the line.
    let line = &line[..line.len().min(255)];
    let trimmed: &[u8] = {
        let start = line.iter().position(|b| *b != b' ' && *b != b'\t')?;
        let end = line
            .iter()
            .rposition(|b| *b != b' ' && *b != b'\t' && *b != b'\r')?
            + 1;
        &line[start..end]
    };
    let split = trimmed.iter().position(|b| *b == b' ' || *b == b'\t');
    match split {
        None => Some((trimmed.to_vec(), None)),
        Some(i) => {
            let arg = trimmed[i..]
                .iter()
                .position(|b| *b != b' ' && *b != b'\t')
                .map(|j| trimmed[i + j..].to_vec());
            Some((trimmed[..i].to_vec(), arg))
        }
    }
}

/// Why a program could not be loaded (for the user-facing error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub errno: Errno,
    pub reason: &'static str,
}

impl From<Errno> for LoadError {
    fn from(errno: Errno) -> Self {
        LoadError { errno, reason: "" }
    }
}

fn fail(errno: Errno, reason: &'static str) -> LoadError {
    LoadError { errno, reason }
}

impl<P: Platform> Kernel<'_, P> {
    /// Find `args[0]` the way runc does: a name with a slash is a path
    /// (relative to the cwd), otherwise search `PATH` from the environment.
    pub fn resolve_program(
        &self,
        name: &[u8],
        env: &[Vec<u8>],
        cwd: &[u8],
    ) -> Result<Vec<u8>, LoadError> {
        if name.is_empty() {
            return Err(fail(Errno::ENOENT, "empty program name"));
        }
        if name.contains(&b'/') {
            return Ok(join(cwd, name));
        }
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix(b"PATH="))
            .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        for dir in path.split(|b| *b == b':') {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let cand = join(cwd, &join(dir, name));
            let host = self.plat.host();
            if let Ok(h) = host.open(&self.vfs.host_path(&cand)) {
                let st = host.fstat(h);
                host.close(h);
                if matches!(st, Ok(s) if s.st_mode & S_IFMT == S_IFREG && s.st_mode & 0o111 != 0) {
                    return Ok(cand);
                }
            }
        }
        Err(fail(Errno::ENOENT, "executable file not found in $PATH"))
    }

    /// Replace the address space with `path`'s image and a fresh stack.
    pub fn load_program(
        &mut self,
        mm_id: MmId,
        path: &[u8],
        argv: &[Vec<u8>],
        envp: &[Vec<u8>],
    ) -> Result<Entry, LoadError> {
        let mut file = self.open_exec(path)?;
        // `#!` scripts: run the interpreter with the script's path.
        let mut argv_owned: Vec<Vec<u8>> = argv.to_vec();
        let mut exe: Vec<u8> = path.to_vec();
        let mut depth = 0;
        while file.head.starts_with(b"#!") {
            depth += 1;
            let parsed = parse_shebang(&file.head);
            file.release(self.plat);
            if depth > MAX_INTERP_DEPTH {
                return Err(fail(Errno::ELOOP, "too many levels of #! interpreters"));
            }
            let (interp, arg) = parsed.ok_or(fail(Errno::ENOEXEC, "malformed #! line"))?;
            let mut new_argv = alloc::vec![interp.clone()];
            new_argv.extend(arg);
            new_argv.push(exe.clone());
            new_argv.extend(argv_owned.iter().skip(1).cloned());
            argv_owned = new_argv;
            file = self.open_exec(&interp)?;
            exe = interp;
        }
        let argv: &[Vec<u8>] = &argv_owned;
        let info = match elf::parse_head(&file.head, file.size, elf::PIE_BASE) {
            Ok(info) => info,
            Err(e) => {
                file.release(self.plat);
                return Err(fail(e, "not a valid x86-64 ELF executable"));
            }
        };
        // The dynamic loader named by PT_INTERP, opened before the point of
        // no return.
        let interp = match &info.interp {
            Some(path) => {
                let checked = self
                    .open_exec(path)
                    .map_err(|e| fail(e.errno, "cannot load the program's interpreter"))
                    .and_then(|ifile| {
                        match elf::parse_head(&ifile.head, ifile.size, 0) {
                            Ok(probe) if probe.interp.is_none() => Ok((ifile, probe)),
                            Ok(_) => Err((
                                ifile,
                                fail(
                                    Errno::ELIBBAD,
                                    "the interpreter is not a plain shared object",
                                ),
                            )),
                            Err(e) => Err((ifile, fail(e, "the interpreter is not a valid ELF"))),
                        }
                        .map_err(|(ifile, why)| {
                            ifile.release(self.plat);
                            why
                        })
                    });
                match checked {
                    Ok(found) => Some(found),
                    Err(why) => {
                        file.release(self.plat);
                        return Err(why);
                    }
                }
            }
            None => None,
        };
        let result = self.map_program(
            mm_id,
            exe,
            path,
            argv,
            envp,
            (&file, &info),
            interp.as_ref(),
        );
        file.release(self.plat);
        if let Some((ifile, _)) = interp {
            ifile.release(self.plat);
        }
        result
    }

    /// The part of `load_program` after its files are open: map them,
    /// build the stack.
    #[allow(clippy::too_many_arguments)]
    fn map_program(
        &mut self,
        mm_id: MmId,
        exe: Vec<u8>,
        path: &[u8],
        argv: &[Vec<u8>],
        envp: &[Vec<u8>],
        (file, info): (&image::ExecFile, &elf::ElfInfo),
        interp: Option<&(image::ExecFile, elf::ElfInfo)>,
    ) -> Result<Entry, LoadError> {
        let vdso_frames = self.vdso_frames();
        let stack_limit = self.group().rlimits[RLIMIT_STACK as usize].0;
        let creds = self.group().creds;
        let plat = self.plat;
        let frames = &mut self.frames;
        let mm = &mut self
            .mms
            .get_mut(&mm_id)
            .ok_or(fail(Errno::ENOMEM, "no address space"))?
            .mm;

        image::map_image(mm, plat, frames, info, file)?;
        if info.end > mm.task_size {
            return Err(fail(
                Errno::ENOEXEC,
                "segments reach above the user address range",
            ));
        }
        // Stack and heap. The stack top sits one guard page below the top
        // of the user range, as Linux places it without randomisation.
        let stack_top = mm.task_size - 2 * PAGE_SIZE;
        let stack_size = stack_limit.clamp(128 << 10, MAX_STACK);
        let stack_size = page_up(stack_size).unwrap_or(DEFAULT_STACK);
        let stack_bottom = stack_top - stack_size;
        mm.insert_vma(Vma {
            start: stack_bottom,
            end: stack_top,
            prot: Prot::RW,
            kind: VmaKind::Stack,
            shared: false,
            backing: None,
        });
        mm.mmap_base = stack_bottom - STACK_GAP;
        mm.brk_start = page_up(info.end).unwrap_or(info.end);
        mm.brk = mm.brk_start;
        // The interpreter goes where an unhinted mmap would put it.
        let (entry, interp_base) = match interp {
            Some((ifile, probe)) => {
                let lo = probe
                    .segments
                    .iter()
                    .map(|s| page_down(s.vaddr))
                    .min()
                    .unwrap_or(0);
                let span =
                    page_up(probe.end - lo).ok_or(fail(Errno::ENOEXEC, "interpreter too large"))?;
                let base = mm
                    .find_free(span, mm.mmap_base)
                    .ok_or(fail(Errno::ENOMEM, "no room for the interpreter"))?;
                let iinfo = elf::parse_head(&ifile.head, ifile.size, base - lo)
                    .map_err(|e| fail(e, "the interpreter is not a valid ELF"))?;
                image::map_image(mm, plat, frames, &iinfo, ifile)?;
                (iinfo.entry, base - lo)
            }
            None => (info.entry, 0),
        };

        // The vDSO and its vvar page, where the next mmap would go.
        let vdso_base = match vdso_frames {
            Some(f) => Some(
                vdso::map_into(mm, plat, frames, f).map_err(|e| fail(e, "cannot map the vDSO"))?,
            ),
            None => None,
        };

        let mut random = [0u8; 16];
        plat.random(&mut random);
        let mut auxv = vec![
            (AT_HWCAP, 0x178b_fbff),
            (AT_PAGESZ, PAGE_SIZE),
            (AT_CLKTCK, 100),
            (AT_PHENT, u64::from(info.phentsize)),
            (AT_PHNUM, u64::from(info.phnum)),
            (AT_BASE, interp_base),
            (AT_FLAGS, 0),
            (AT_ENTRY, info.entry),
            (AT_UID, u64::from(creds.uid)),
            (AT_EUID, u64::from(creds.euid)),
            (AT_GID, u64::from(creds.gid)),
            (AT_EGID, u64::from(creds.egid)),
            (AT_SECURE, 0),
            (AT_MINSIGSTKSZ, 2048),
        ];
        if let Some(base) = vdso_base {
            auxv.push((AT_SYSINFO_EHDR, base));
        }
        if let Some(phdr) = info.phdr {
            auxv.insert(0, (AT_PHDR, phdr));
        }
        let argv_refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        let envp_refs: Vec<&[u8]> = envp.iter().map(|a| a.as_slice()).collect();
        let img = stack::build(
            stack_top,
            &stack::StackInputs {
                argv: &argv_refs,
                envp: &envp_refs,
                auxv: &auxv,
                random,
                platform: b"x86_64",
                execfn: path,
                max_bytes: (stack_size / 4) as usize,
            },
        )
        .map_err(|e| fail(e, "argument list too long"))?;
        mm.copy_out(plat, frames, img.sp, &img.bytes)?;
        mm.prefault_image(plat, frames, crate::mm::prefault::PREFAULT_MAX);
        self.last_exe = exe;
        Ok(Entry {
            rip: entry,
            rsp: img.sp,
        })
    }
}

/// `base` joined with `rel`, unless `rel` is absolute. Keeps `..` for the
/// host to resolve inside the root.
pub fn join(base: &[u8], rel: &[u8]) -> Vec<u8> {
    if rel.starts_with(b"/") {
        return rel.to_vec();
    }
    let mut out = base.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(rel.strip_prefix(b"./").unwrap_or(rel));
    out
}

#[cfg(test)]
mod tests {
    use super::parse_shebang;

    #[test]
    fn shebang_lines() {
        assert_eq!(
            parse_shebang(b"#!/bin/sh\necho"),
            Some((b"/bin/sh".to_vec(), None))
        );
        assert_eq!(
            parse_shebang(b"#! /usr/bin/env  python3 -u \r\n"),
            Some((b"/usr/bin/env".to_vec(), Some(b"python3 -u".to_vec())))
        );
        assert_eq!(parse_shebang(b"#!   \n"), None);
        assert_eq!(parse_shebang(b"\x7fELF"), None);
    }
}
