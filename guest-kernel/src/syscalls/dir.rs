//! getdents64, chdir, fchdir.

use alloc::vec;

use super::{arg_fd, Args};
use crate::abi::linux::{S_IFDIR, S_IFMT};
use crate::abi::{Errno, KResult};
use crate::fs::File;
use crate::kernel::Kernel;
use crate::platform::{HostOps, Platform};

/// getdents64(2) on a directory of the container root.
pub fn sys_getdents64<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    if let File::Dir(d) = &*file {
        return dir_entries(k, d, a[1], a[2] as u32 as usize);
    }
    let File::HostFile { handle, .. } = &*file else {
        return Err(Errno::ENOTDIR);
    };
    let len = (a[2] as u32 as usize).min(64 * 1024);
    let mut buf = vec![0u8; len];
    let n = k.plat.host().getdents64(*handle, &mut buf)?;
    k.copy_out(a[1], &buf[..n])?;
    Ok(n as u64)
}

/// Serialize a directory snapshot as `linux_dirent64` records from its
/// position, with `.` and `..` first.
fn dir_entries<P: Platform>(
    k: &mut Kernel<'_, P>,
    d: &crate::fs::DirFile,
    buf: u64,
    len: usize,
) -> KResult<u64> {
    use core::sync::atomic::Ordering;
    let mut out = vec![0u8; len.min(64 * 1024)];
    let mut used = 0usize;
    let mut pos = d.pos.load(Ordering::Relaxed) as usize;
    loop {
        let (name, ino, dtype): (&[u8], u64, u8) = match pos {
            0 => (b".", 1, 4),
            1 => (b"..", 1, 4),
            i => match d.entries.get(i - 2) {
                Some((n, ino, t)) => (n, *ino, *t),
                None => break,
            },
        };
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        if used + reclen > out.len() {
            if used == 0 {
                return Err(Errno::EINVAL);
            }
            break;
        }
        let rec = &mut out[used..used + reclen];
        rec[0..8].copy_from_slice(&ino.to_le_bytes());
        rec[8..16].copy_from_slice(&((pos + 1) as u64).to_le_bytes());
        rec[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        rec[18] = dtype;
        rec[19..19 + name.len()].copy_from_slice(name);
        used += reclen;
        pos += 1;
    }
    k.copy_out(buf, &out[..used])?;
    d.pos.store(pos as u64, Ordering::Relaxed);
    Ok(used as u64)
}

fn set_cwd<P: Platform>(k: &mut Kernel<'_, P>, full: alloc::vec::Vec<u8>) -> KResult<u64> {
    let full = normalize(&full);
    let node = k.vfs.lookup(k.plat, &full, true)?;
    let st = k.vfs.stat(k.plat, &node)?;
    if st.st_mode & S_IFMT != S_IFDIR {
        return Err(Errno::ENOTDIR);
    }
    super::stat::check_access(k.group().creds, &st, 1)?;
    k.group_mut().cwd = normalize(&full);
    Ok(0)
}

/// chdir(2).
pub fn sys_chdir<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = k.read_cstr(a[0], 4095)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let full = crate::loader::join(&k.group().cwd, &path);
    set_cwd(k, full)
}

/// fchdir(2).
pub fn sys_fchdir<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let path = file.path().ok_or(Errno::ENOTDIR)?.to_vec();
    set_cwd(k, path)
}

/// Lexically clean an absolute path: no `.`, `..` or repeated slashes.
pub fn normalize(path: &[u8]) -> alloc::vec::Vec<u8> {
    let mut parts: alloc::vec::Vec<&[u8]> = alloc::vec::Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = alloc::vec::Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes() {
        assert_eq!(normalize(b"/a/./b//../c/"), b"/a/c");
        assert_eq!(normalize(b"/../.."), b"/");
        assert_eq!(normalize(b"/"), b"/");
    }
}
