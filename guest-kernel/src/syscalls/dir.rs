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
    let File::HostFile { handle, .. } = &*file else {
        return Err(Errno::ENOTDIR);
    };
    let len = (a[2] as u32 as usize).min(64 * 1024);
    let mut buf = vec![0u8; len];
    let n = k.plat.host().getdents64(*handle, &mut buf)?;
    k.copy_out(a[1], &buf[..n])?;
    Ok(n as u64)
}

fn set_cwd<P: Platform>(k: &mut Kernel<'_, P>, full: alloc::vec::Vec<u8>) -> KResult<u64> {
    let host = k.plat.host();
    let h = host.open(&full)?;
    let st = host.fstat(h);
    host.close(h);
    if st?.st_mode & S_IFMT != S_IFDIR {
        return Err(Errno::ENOTDIR);
    }
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

/// fchdir(2): only descriptors opened by path remember where they point,
/// and the sentry's host files do not yet.
pub fn sys_fchdir<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    k.group().fds.get(arg_fd(a[0]))?;
    Err(Errno::ENOSYS)
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
