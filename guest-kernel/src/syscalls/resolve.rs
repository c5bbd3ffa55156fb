//! Path walks with openat2's `RESOLVE_*` restrictions.
//!
//! The walk goes one component at a time, reading every symlink itself, so
//! that each restriction is checked where Linux checks it. The result is a
//! path with no symlink left in it (but perhaps a final one, when the
//! caller does not follow it), which the normal lookup then opens.
//! The sentry serves one task at a time, so nothing can swap a component
//! for a symlink between this walk and the open.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::abi::linux::{S_IFLNK, S_IFMT};
use crate::abi::{Errno, KResult};
use crate::fs::tmpfs::InodeKind;
use crate::fs::vfs::Node;
use crate::kernel::Kernel;
use crate::platform::{HostOps, Platform};

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;
pub const RESOLVE_ALL: u64 = 0x3f;

/// Symlinks one walk may follow (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// A symlink's target, and whether it is a procfs "magic" link (a file
/// descriptor, `exe`, `cwd` or `root`), which names an object, not a path.
fn symlink_at<P: Platform>(k: &mut Kernel<'_, P>, path: &[u8]) -> KResult<Option<(Vec<u8>, bool)>> {
    if super::procfs::is_proc(path) {
        return Ok(match super::procfs::lookup(k, path, false)? {
            Ok(super::procfs::ProcNode::Symlink(t)) => {
                let last = path.rsplit(|b| *b == b'/').next().unwrap_or_default();
                let magic = !(last == b"self" || last == b"thread-self");
                Some((t, magic))
            }
            _ => None,
        });
    }
    match k.vfs.lookup(k.plat, path, false)? {
        Node::Tmp { fs, ino, .. } => Ok(match fs.inode(ino)?.kind {
            InodeKind::Symlink { target } => Some((target, false)),
            _ => None,
        }),
        Node::Symlink(t) => Ok(Some((t, false))),
        Node::Host(p) => {
            if k.vfs.lower_stat(k.plat, &p, false)?.st_mode & S_IFMT != S_IFLNK {
                return Ok(None);
            }
            let mut buf = alloc::vec![0u8; 4096];
            let n = k.plat.host().readlink(&k.vfs.host_path(&p), &mut buf)?;
            buf.truncate(n);
            Ok(Some((buf, false)))
        }
        _ => Ok(None),
    }
}

fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    if parts.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    out
}

fn split(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
}

/// Walk `path` from `base` (the directory fd's absolute path) under the
/// `resolve` restrictions. With `follow_last`, a final symlink is followed.
/// Returns the absolute path to open.
pub fn walk<P: Platform>(
    k: &mut Kernel<'_, P>,
    base: &[u8],
    path: &[u8],
    resolve: u64,
    follow_last: bool,
) -> KResult<Vec<u8>> {
    let scoped = resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0;
    let root: Vec<Vec<u8>> = if scoped {
        split(base).collect()
    } else {
        Vec::new()
    };
    let mut cur: Vec<Vec<u8>> = Vec::new();
    let start_at = |cur: &mut Vec<Vec<u8>>, absolute: bool| -> KResult<()> {
        *cur = if !absolute {
            split(base).collect()
        } else if resolve & RESOLVE_BENEATH != 0 {
            return Err(Errno::EXDEV);
        } else {
            root.clone()
        };
        Ok(())
    };
    start_at(&mut cur, path.starts_with(b"/"))?;
    let mount = k.vfs.mount_of(&join(&cur));
    let mut todo: VecDeque<Vec<u8>> = split(path).collect();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                if cur.len() <= root.len() && scoped {
                    if resolve & RESOLVE_BENEATH != 0 {
                        return Err(Errno::EXDEV);
                    }
                    continue; // IN_ROOT: ".." of the root is the root
                }
                cur.pop();
            }
            _ => cur.push(c),
        }
        let here = join(&cur);
        if resolve & RESOLVE_NO_XDEV != 0 && k.vfs.mount_of(&here) != mount {
            return Err(Errno::EXDEV);
        }
        if todo.is_empty() && !follow_last {
            break;
        }
        let target = match symlink_at(k, &here) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            // A missing component: the open reports it (or creates it).
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let (target, magic) = target;
        if resolve & RESOLVE_NO_SYMLINKS != 0 {
            return Err(Errno::ELOOP);
        }
        if magic {
            if resolve & RESOLVE_NO_MAGICLINKS != 0 {
                return Err(Errno::ELOOP);
            }
            if scoped {
                return Err(Errno::EXDEV);
            }
            // It names an object, not a path: the open follows it itself.
            cur.extend(todo);
            return Ok(join(&cur));
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(Errno::ELOOP);
        }
        cur.pop();
        if target.starts_with(b"/") {
            start_at(&mut cur, true)?;
        }
        for (i, t) in split(&target).enumerate() {
            todo.insert(i, t);
        }
    }
    Ok(join(&cur))
}
