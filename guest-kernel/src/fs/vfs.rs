//! The sentry's file namespace: a small mount table over the container
//! root and the sentry's own filesystems.
//!
//! - `/` is an overlay: a tmpfs upper layer over the host's container root
//!   (the lower layer, read only, reached through host calls). Writes,
//!   deletions (whiteouts) and renames stay in the sandbox; a file of the
//!   lower layer is copied up when it is first opened for writing.
//! - `/tmp` and `/dev/shm` are tmpfs of their own.
//! - `/dev` holds the sentry's devices, over a tmpfs of its own for
//!   anything else made there (as runc's `/dev` is a tmpfs).
//!
//! Paths arrive normalized and absolute. Symlinks of the upper layer and of
//! tmpfs are followed here; those of the lower layer by the host, beneath
//! the root.

use alloc::borrow::Cow;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::devfs::{dev_reserved, dev_symlink, pty_number};
use super::tmpfs::{InodeKind, Tmpfs, ROOT_INO};
use super::DevKind;
use crate::abi::linux::{Stat, S_IFDIR, S_IFMT};
use crate::abi::{Errno, KResult};
use crate::platform::{HostOps, Platform};

/// Symlinks followed in one lookup before `ELOOP` (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// What a path names.
#[derive(Clone, Debug)]
pub enum Node {
    /// A file or directory of the lower layer, by container path.
    Host(Vec<u8>),
    /// A tmpfs inode. `overlay_path` is set for the root overlay's upper
    /// layer: a directory there merges with the lower one at that path.
    Tmp {
        fs: Arc<Tmpfs>,
        ino: u64,
        overlay_path: Option<Vec<u8>>,
    },
    /// One of the sentry's devices.
    Dev(DevKind),
    /// The `/dev` directory itself.
    DevDir,
    /// `/dev/pts`, the sentry's devpts.
    PtsDir,
    /// A symlink of the sentry's own (`/dev/fd`, `/dev/stdin`...), not
    /// followed: its target.
    Symlink(Vec<u8>),
    /// A directory of `/proc` (its contents come from the procfs module).
    Proc(Vec<u8>),
}

/// How long a lower-layer path's attributes are trusted (FUSE's default
/// `attr_timeout`): the sandbox never changes the lower layer, but the host
/// may (a shared volume), and a second is what FUSE users expect.
const ATTR_TTL_NS: u64 = 1_000_000_000;
/// Entries kept before the attribute cache starts over.
const ATTR_CACHE_MAX: usize = 16384;

/// A lower-layer path's `stat` and `lstat` results, errors included
/// (programs probe many paths that do not exist), as of `at`.
#[derive(Debug, Default)]
struct CachedAttr {
    at: u64,
    stat: Option<KResult<Stat>>,
    lstat: Option<KResult<Stat>>,
}

/// The mount table.
#[derive(Debug)]
pub struct Vfs {
    /// The pod container whose namespace this is (0: the sandbox's own).
    /// Its lower layer is the host's root number `root`.
    pub root: u32,
    /// `root.readonly`: the overlay refuses writes with `EROFS`.
    pub readonly: bool,
    /// The root overlay's upper layer.
    pub upper: Arc<Tmpfs>,
    pub tmp: Arc<Tmpfs>,
    pub shm: Arc<Tmpfs>,
    /// What is made in `/dev` beside the devices.
    pub dev: Arc<Tmpfs>,
    /// The spec's tmpfs mounts: (path components, filesystem), longest first.
    pub mounts: Vec<(Vec<Vec<u8>>, Arc<Tmpfs>)>,
    /// The spec's bind mounts the host serves: (path components,
    /// writable), longest first. Beneath one, paths are the host's (no
    /// overlay): writes go through to the host if it is writable, and are
    /// `EROFS` if not.
    pub binds: Vec<(Vec<Vec<u8>>, bool)>,
    /// The pseudo-terminals of devpts, by number.
    pub ptys: spin::Mutex<alloc::collections::BTreeMap<u32, alloc::sync::Weak<super::pty::Pty>>>,
    /// Attributes of lower-layer paths: each costs host calls to learn.
    attrs: spin::Mutex<alloc::collections::BTreeMap<Vec<u8>, CachedAttr>>,
}

/// The components of a normalized absolute path.
fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect()
}

fn join_components(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Split `/a/b/c` into (`/a/b`, `c`).
pub fn split_last(path: &[u8]) -> KResult<(Vec<u8>, Vec<u8>)> {
    let parts = components(path);
    let (last, dir) = parts.split_last().ok_or(Errno::EBUSY)?;
    Ok((join_components(dir), last.to_vec()))
}

impl Default for Vfs {
    fn default() -> Self {
        Vfs {
            root: 0,
            readonly: false,
            upper: Arc::new(Tmpfs::new(0x30, 0o755)),
            tmp: Arc::new(Tmpfs::new(0x31, 0o1777)),
            shm: Arc::new(Tmpfs::new(0x32, 0o1777)),
            dev: Arc::new(Tmpfs::new(0x33, 0o755)),
            mounts: Vec::new(),
            binds: Vec::new(),
            ptys: Default::default(),
            attrs: Default::default(),
        }
    }
}

impl Vfs {
    /// A fresh namespace (its own overlay, `/tmp` and `/dev/shm`) over the
    /// host's root number `root`.
    pub fn for_root(root: u32) -> Vfs {
        // Device numbers of their own, so that (st_dev, st_ino), which
        // file locks and programs take for a file's identity, never
        // confuses two containers' files.
        let dev = 0x1000 + 0x10 * u64::from(root);
        Vfs {
            root,
            upper: Arc::new(Tmpfs::new(dev, 0o755)),
            tmp: Arc::new(Tmpfs::new(dev + 1, 0o1777)),
            shm: Arc::new(Tmpfs::new(dev + 2, 0o1777)),
            dev: Arc::new(Tmpfs::new(dev + 3, 0o755)),
            ..Vfs::default()
        }
    }

    /// The name the host knows a lower-layer `path` by: the path itself
    /// beneath root 0, `N:path` beneath root N (see `HostOps::open`).
    pub fn host_path<'a>(&self, path: &'a [u8]) -> Cow<'a, [u8]> {
        if self.root == 0 {
            return Cow::Borrowed(path);
        }
        let mut out = alloc::format!("{}:", self.root).into_bytes();
        out.extend_from_slice(path);
        Cow::Owned(out)
    }

    /// `stat` (with `follow`) or `lstat` of a lower-layer path, from the
    /// attribute cache while it is fresh.
    pub fn lower_stat<P: Platform>(&self, plat: &P, path: &[u8], follow: bool) -> KResult<Stat> {
        if matches!(self.bind_of(path), Some((_, true))) {
            // The sandbox changes these itself: never cached. One host
            // call unless the path is a symlink to follow.
            return match plat.host().lstat(path) {
                Ok(st) if !follow || st.st_mode & S_IFMT != crate::abi::linux::S_IFLNK => Ok(st),
                _ => host_stat(plat, path),
            };
        }
        let now = plat.now(crate::platform::Clock::Monotonic);
        {
            let cache = self.attrs.lock();
            if let Some(c) = cache.get(path) {
                if now.saturating_sub(c.at) < ATTR_TTL_NS {
                    if let Some(r) = if follow { &c.stat } else { &c.lstat } {
                        return *r;
                    }
                }
            }
        }
        let hp = self.host_path(path);
        // One host call for most paths: the `lstat` of anything but a
        // symlink is its `stat` too, and a missing path is missing both
        // ways. Only a symlink to follow (or a path `lstat` cannot take)
        // costs the open, fstat and close of `host_stat`.
        let l = plat.host().lstat(&hp);
        let not_link = |st: &Stat| st.st_mode & S_IFMT != crate::abi::linux::S_IFLNK;
        let both = match &l {
            Ok(st) => not_link(st),
            Err(e) => matches!(*e, Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG),
        };
        let l = match l {
            Ok(st) => Ok(st),
            Err(_) if both => l,
            Err(_) => host_stat(plat, &hp),
        };
        let r = if both || !follow {
            l
        } else {
            host_stat(plat, &hp)
        };
        let mut cache = self.attrs.lock();
        if cache.len() >= ATTR_CACHE_MAX {
            cache.clear();
        }
        let c = cache.entry(path.to_vec()).or_default();
        if now.saturating_sub(c.at) >= ATTR_TTL_NS {
            *c = CachedAttr {
                at: now,
                ..Default::default()
            };
        }
        if both {
            c.stat = Some(l);
            c.lstat = Some(l);
        } else if follow {
            c.stat = Some(r);
        } else {
            c.lstat = Some(r);
        }
        r
    }

    /// The tmpfs mounted at the start of `path`, with the rest of it.
    fn tmpfs_mount<'a>(&self, parts: &'a [&'a [u8]]) -> Option<(Arc<Tmpfs>, &'a [&'a [u8]])> {
        for (at, fs) in &self.mounts {
            if parts.len() >= at.len() && parts.iter().zip(at).all(|(a, b)| *a == b.as_slice()) {
                return Some((fs.clone(), &parts[at.len()..]));
            }
        }
        match parts {
            [b"tmp", rest @ ..] => Some((self.tmp.clone(), rest)),
            [b"dev", b"shm", rest @ ..] => Some((self.shm.clone(), rest)),
            [b"dev", name, ..] if !dev_reserved(name) => Some((self.dev.clone(), &parts[1..])),
            _ => None,
        }
    }

    /// Which mount `path` (normalized, absolute) is on: 0 for the root,
    /// others numbered as `tmpfs_mount` and `lookup` find them.
    pub fn mount_of(&self, path: &[u8]) -> usize {
        let parts = components(path);
        for (i, (at, _)) in self.mounts.iter().enumerate() {
            if parts.len() >= at.len() && parts.iter().zip(at).all(|(a, b)| *a == b.as_slice()) {
                return 10 + i;
            }
        }
        if let Some((i, _)) = self.bind_of(path) {
            return 100 + i;
        }
        match parts.as_slice() {
            [b"proc", ..] => 1,
            [b"sys", ..] => 2,
            [b"dev", b"shm", ..] => 3,
            [b"dev", ..] => 4,
            [b"tmp", ..] => 5,
            _ => 0,
        }
    }

    /// Resolve `path` (normalized, absolute). With `follow`, a final
    /// symlink is followed too.
    pub fn lookup<P: Platform>(&self, plat: &P, path: &[u8], follow: bool) -> KResult<Node> {
        let mut path = path.to_vec();
        for _ in 0..MAX_SYMLINKS {
            match self.lookup_once(plat, &path, follow)? {
                Step::Done(node) => return Ok(node),
                Step::Restart(p) => path = p,
            }
        }
        Err(Errno::ELOOP)
    }

    fn lookup_once<P: Platform>(&self, plat: &P, path: &[u8], follow: bool) -> KResult<Step> {
        let parts = components(path);
        match parts.as_slice() {
            [b"dev"] => return Ok(Step::Done(Node::DevDir)),
            [b"dev", _] if DevKind::lookup(path).is_some() => {
                return Ok(Step::Done(Node::Dev(
                    DevKind::lookup(path).ok_or(Errno::ENOENT)?,
                )))
            }
            [b"dev", b"pts"] => return Ok(Step::Done(Node::PtsDir)),
            [b"dev", b"pts", b"ptmx"] => return Ok(Step::Done(Node::Dev(DevKind::Ptmx))),
            [b"dev", b"pts", n] => {
                let n = pty_number(n).ok_or(Errno::ENOENT)?;
                self.pty(n).ok_or(Errno::ENOENT)?;
                return Ok(Step::Done(Node::Dev(DevKind::Pts(n))));
            }
            [b"dev", b"shm", ..] => {}
            [b"dev", name, rest @ ..] if dev_symlink(name).is_some() => {
                let target = dev_symlink(name).unwrap_or_default();
                if rest.is_empty() && !follow {
                    return Ok(Step::Done(Node::Symlink(target.to_vec())));
                }
                let mut next = target.to_vec();
                for r in rest {
                    next.push(b'/');
                    next.extend_from_slice(r);
                }
                return Ok(Step::Restart(next));
            }
            [b"dev", name, ..] if dev_reserved(name) => return Err(Errno::ENOENT),
            // The sentry's own procfs; the lower layer's /proc and /sys
            // (the host's, under `do`) are never reached.
            [b"proc", ..] | [b"sys", ..] => return Ok(Step::Done(Node::Proc(path.to_vec()))),
            _ => {}
        }
        if self.bind_of(path).is_some() {
            // The host resolves paths beneath a bind mount, symlinks
            // included, beneath its source.
            self.lower_stat(plat, path, follow)?;
            return Ok(Step::Done(Node::Host(path.to_vec())));
        }
        let (fs, rest, overlay) = match self.tmpfs_mount(&parts) {
            Some((fs, rest)) => (fs, rest, false),
            None => (self.upper.clone(), &parts[..], true),
        };
        let mount_depth = parts.len() - rest.len();
        let mut ino = ROOT_INO;
        for (i, c) in rest.iter().enumerate() {
            let last = i + 1 == rest.len();
            let Some(child) = fs.lookup(ino, c)? else {
                if overlay {
                    // Not in the upper layer: the lower one decides, unless
                    // an opaque directory hides it.
                    if let InodeKind::Dir { opaque: true, .. } = fs.inode(ino)?.kind {
                        return Err(Errno::ENOENT);
                    }
                    // The host resolves the rest; make sure it exists (as a
                    // dangling symlink, when it is not followed).
                    self.lower_stat(plat, path, follow)?;
                    return Ok(Step::Done(Node::Host(path.to_vec())));
                }
                return Err(Errno::ENOENT);
            };
            match fs.inode(child)?.kind {
                InodeKind::Whiteout => return Err(Errno::ENOENT),
                InodeKind::Symlink { target } if !last || follow => {
                    let here = join_components(&parts[..mount_depth + i]);
                    let mut next = if target.starts_with(b"/") {
                        target
                    } else {
                        let mut p = here;
                        p.push(b'/');
                        p.extend_from_slice(&target);
                        p
                    };
                    for r in &rest[i + 1..] {
                        next.push(b'/');
                        next.extend_from_slice(r);
                    }
                    return Ok(Step::Restart(crate::syscalls::dir::normalize(&next)));
                }
                InodeKind::Dir { .. } => ino = child,
                _ if last => ino = child,
                _ => return Err(Errno::ENOTDIR),
            }
        }
        let overlay_path = overlay.then(|| path.to_vec());
        Ok(Step::Done(Node::Tmp {
            fs,
            ino,
            overlay_path,
        }))
    }

    /// `stat` of a node.
    pub fn stat<P: Platform>(&self, plat: &P, node: &Node) -> KResult<Stat> {
        match node {
            Node::Host(p) => self.lower_stat(plat, p, true),
            Node::Tmp { fs, ino, .. } => fs.stat(*ino),
            Node::Dev(d) => Ok(d.stat()),
            Node::Symlink(t) => Ok(Stat {
                st_dev: 5,
                st_ino: 100 + t.len() as u64,
                st_nlink: 1,
                st_mode: crate::abi::linux::S_IFLNK | 0o777,
                st_size: t.len() as i64,
                st_blksize: 4096,
                ..Default::default()
            }),
            Node::Proc(_) => Ok(Stat {
                st_dev: 0x40,
                st_ino: 1,
                st_nlink: 2,
                st_mode: S_IFDIR | 0o555,
                st_blksize: 4096,
                ..Default::default()
            }),
            Node::PtsDir => Ok(Stat {
                st_dev: 0x41,
                st_ino: 1,
                st_nlink: 2,
                st_mode: S_IFDIR | 0o755,
                st_blksize: 4096,
                ..Default::default()
            }),
            Node::DevDir => Ok(Stat {
                st_dev: 5,
                st_ino: 1,
                st_nlink: 2,
                st_mode: S_IFDIR | 0o755,
                st_blksize: 4096,
                ..Default::default()
            }),
        }
    }

    /// Make sure directory `path` of the overlay exists in the upper layer,
    /// copying up the chain of lower directories; returns its inode.
    pub fn copy_up_dir<P: Platform>(&self, plat: &P, path: &[u8], now: (i64, i64)) -> KResult<u64> {
        // Nothing beneath a bind mount is copied into the sandbox: a
        // writable one is written on the host, a read-only one refuses.
        if self.readonly || self.bind_of(path).is_some() {
            return Err(Errno::EROFS);
        }
        let parts = components(path);
        let mut ino = ROOT_INO;
        for (i, c) in parts.iter().enumerate() {
            ino = match self.upper.lookup(ino, c)? {
                Some(child) => match self.upper.inode(child)?.kind {
                    InodeKind::Dir { .. } => child,
                    InodeKind::Whiteout => return Err(Errno::ENOENT),
                    _ => return Err(Errno::ENOTDIR),
                },
                None => {
                    let lower = join_components(&parts[..=i]);
                    let st = self.lower_stat(plat, &lower, true)?;
                    if st.st_mode & S_IFMT != S_IFDIR {
                        return Err(Errno::ENOTDIR);
                    }
                    let kind = InodeKind::Dir {
                        entries: Default::default(),
                        parent: ino,
                        opaque: false,
                    };
                    let child =
                        self.upper
                            .create(ino, c, kind, st.st_mode, (st.st_uid, st.st_gid), now)?;
                    self.upper
                        .set_mtime(child, (st.st_mtime, st.st_mtime_nsec))?;
                    child
                }
            };
        }
        Ok(ino)
    }

    /// Copy a lower regular file into the upper layer (before its first
    /// write); returns the new inode.
    pub fn copy_up_file<P: Platform>(
        &self,
        plat: &P,
        path: &[u8],
        now: (i64, i64),
    ) -> KResult<u64> {
        if self.readonly || self.bind_of(path).is_some() {
            return Err(Errno::EROFS);
        }
        let (dir, name) = split_last(path)?;
        let parent = self.copy_up_dir(plat, &dir, now)?;
        let host = plat.host();
        let h = host.open(&self.host_path(path))?;
        let result = (|| {
            let st = host.fstat(h)?;
            if st.st_mode & S_IFMT != crate::abi::linux::S_IFREG {
                return Err(Errno::EISDIR);
            }
            // Chunk by chunk: a large file never needs one large buffer.
            let data = super::filedata::FileData::default();
            let mut chunk = alloc::vec![0u8; 64 * 1024];
            let mut off = 0u64;
            loop {
                match host.pread(h, &mut chunk, off)? {
                    0 => break,
                    n => {
                        data.write(&chunk[..n], off)?;
                        off += n as u64;
                    }
                }
            }
            let ino = self.upper.create(
                parent,
                &name,
                InodeKind::File { data },
                st.st_mode,
                (st.st_uid, st.st_gid),
                (st.st_ctime, st.st_ctime_nsec),
            )?;
            self.upper.set_mtime(ino, (st.st_mtime, st.st_mtime_nsec))?;
            Ok(ino)
        })();
        host.close(h);
        result
    }

    /// The parent directory of `path` as a tmpfs inode where a new entry
    /// can be made: in a tmpfs mount, or in the overlay's upper layer
    /// (copying up lower directories).
    pub fn parent_for_create<P: Platform>(
        &self,
        plat: &P,
        path: &[u8],
        now: (i64, i64),
    ) -> KResult<(Arc<Tmpfs>, u64, Vec<u8>, bool)> {
        let (dir, name) = split_last(path)?;
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        match self.lookup(plat, &dir, true)? {
            Node::Tmp {
                fs,
                ino,
                overlay_path,
            } => {
                if !matches!(fs.inode(ino)?.kind, InodeKind::Dir { .. }) {
                    return Err(Errno::ENOTDIR);
                }
                Ok((fs, ino, name, overlay_path.is_some()))
            }
            Node::Host(p) => {
                let ino = self.copy_up_dir(plat, &p, now)?;
                Ok((self.upper.clone(), ino, name, true))
            }
            // The devices' names are taken.
            Node::DevDir if dev_reserved(&name) => Err(Errno::EEXIST),
            Node::DevDir => Ok((self.dev.clone(), ROOT_INO, name, false)),
            Node::PtsDir | Node::Proc(_) => Err(Errno::EACCES),
            Node::Dev(_) | Node::Symlink(_) => Err(Errno::ENOTDIR),
        }
    }

    /// Remove `path` (a non-directory, or with `dir` an empty directory).
    pub fn remove<P: Platform>(
        &self,
        plat: &P,
        path: &[u8],
        dir: bool,
        now: (i64, i64),
    ) -> KResult<()> {
        let node = self.lookup(plat, path, false)?;
        // The name itself: a lower symlink is removed, not its target (which
        // may not exist).
        let st = match &node {
            Node::Host(p) => self.lower_stat(plat, p, false)?,
            _ => self.stat(plat, &node)?,
        };
        let is_dir = st.st_mode & S_IFMT == S_IFDIR;
        match (dir, is_dir) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            _ => {}
        }
        if is_dir && !self.list(plat, &node)?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        match node {
            Node::Dev(_) | Node::DevDir | Node::PtsDir | Node::Proc(_) | Node::Symlink(_) => {
                Err(Errno::EACCES)
            }
            Node::Tmp {
                fs,
                overlay_path: None,
                ..
            } => {
                let (d, name) = split_last(path)?;
                let parent = match self.lookup(plat, &d, true)? {
                    Node::Tmp { ino, .. } => ino,
                    Node::DevDir => ROOT_INO,
                    _ => return Err(Errno::ENOENT),
                };
                fs.remove(parent, &name)
            }
            Node::Tmp {
                overlay_path: Some(_),
                ..
            }
            | Node::Host(_) => {
                let (d, name) = split_last(path)?;
                let parent = self.copy_up_dir(plat, &d, now)?;
                if self.upper.lookup(parent, &name)?.is_some() {
                    self.upper.remove(parent, &name)?;
                }
                // Hide the lower name, if there is one (a dangling symlink too).
                if self.lower_stat(plat, path, false).is_ok() {
                    self.upper
                        .create(parent, &name, InodeKind::Whiteout, 0, (0, 0), now)?;
                }
                Ok(())
            }
        }
    }

    /// The entries of a directory: (name, inode, `d_type`), without `.`/`..`.
    pub fn list<P: Platform>(&self, plat: &P, node: &Node) -> KResult<Vec<(Vec<u8>, u64, u8)>> {
        let mut out: Vec<(Vec<u8>, u64, u8)> = Vec::new();
        match node {
            Node::PtsDir => {
                out.push((b"ptmx".to_vec(), 2, 2));
                for n in self.pty_numbers() {
                    out.push((alloc::format!("{n}").into_bytes(), 3 + u64::from(n), 2));
                }
                return Ok(out);
            }
            Node::DevDir => {
                for (i, name) in [
                    &b"null"[..],
                    b"zero",
                    b"full",
                    b"random",
                    b"urandom",
                    b"tty",
                    b"ptmx",
                    b"pts",
                    b"shm",
                    b"fd",
                    b"stdin",
                    b"stdout",
                    b"stderr",
                ]
                .iter()
                .enumerate()
                {
                    let dtype = match *name {
                        b"shm" | b"pts" => 4,
                        n if dev_symlink(n).is_some() => 10,
                        _ => 2,
                    };
                    out.push((name.to_vec(), 2 + i as u64, dtype));
                }
                let made = Node::Tmp {
                    fs: self.dev.clone(),
                    ino: ROOT_INO,
                    overlay_path: None,
                };
                out.extend(self.list(plat, &made)?);
                return Ok(out);
            }
            Node::Symlink(_) => return Err(Errno::ENOTDIR),
            Node::Dev(_) | Node::Proc(_) => return Err(Errno::ENOTDIR),
            Node::Host(p) => return host_list(plat, &self.host_path(p)),
            Node::Tmp {
                fs,
                ino,
                overlay_path,
            } => {
                let entries = fs.entries(*ino)?;
                let mut hidden: Vec<Vec<u8>> = Vec::new();
                for (name, child, kind) in entries {
                    let t = match kind {
                        InodeKind::Dir { .. } => 4,
                        InodeKind::File { .. } => 8,
                        InodeKind::Symlink { .. } => 10,
                        InodeKind::Whiteout => {
                            hidden.push(name);
                            continue;
                        }
                    };
                    hidden.push(name.clone());
                    out.push((name, child, t));
                }
                let opaque = matches!(fs.inode(*ino)?.kind, InodeKind::Dir { opaque: true, .. });
                if let (Some(p), false) = (overlay_path, opaque) {
                    if let Ok(lower) = host_list(plat, &self.host_path(p)) {
                        out.extend(lower.into_iter().filter(|(n, _, _)| !hidden.contains(n)));
                    }
                }
            }
        }
        Ok(out)
    }
}

enum Step {
    Done(Node),
    Restart(Vec<u8>),
}

/// `stat` of a lower-layer path, asked of the host.
fn host_stat<P: Platform>(plat: &P, path: &[u8]) -> KResult<Stat> {
    let host = plat.host();
    let h = host.open(path)?;
    let st = host.fstat(h);
    host.close(h);
    st
}

/// The entries of a lower-layer directory.
fn host_list<P: Platform>(plat: &P, path: &[u8]) -> KResult<Vec<(Vec<u8>, u64, u8)>> {
    let host = plat.host();
    let h = host.open(path)?;
    let mut out = Vec::new();
    let mut buf = alloc::vec![0u8; 16 * 1024];
    let result = loop {
        let n = match host.getdents64(h, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        let mut off = 0;
        while off + 19 <= n {
            let ino = u64::from_le_bytes(buf[off..off + 8].try_into().unwrap_or([0; 8]));
            let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let dtype = buf[off + 18];
            if reclen < 20 || off + reclen > n {
                break;
            }
            let name = &buf[off + 19..off + reclen];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                out.push((name.to_vec(), ino, dtype));
            }
            off += reclen;
        }
    };
    host.close(h);
    result.map(|_| out)
}

impl Vfs {
    /// Serve the host's bind mount at `path` (normalized, absolute).
    pub fn mount_bind(&mut self, path: &[u8], writable: bool) {
        let parts: Vec<Vec<u8>> = components(path).into_iter().map(|c| c.to_vec()).collect();
        if parts.is_empty() {
            return;
        }
        self.binds.push((parts, writable));
        self.binds.sort_by_key(|(p, _)| core::cmp::Reverse(p.len()));
    }

    /// The bind mount `path` is beneath, unless a tmpfs mounted deeper
    /// hides it: (its index, writable).
    pub fn bind_of(&self, path: &[u8]) -> Option<(usize, bool)> {
        if self.binds.is_empty() {
            return None;
        }
        let parts = components(path);
        let under = |at: &[Vec<u8>]| {
            parts.len() >= at.len() && parts.iter().zip(at).all(|(a, b)| *a == b.as_slice())
        };
        let (i, (at, writable)) = self
            .binds
            .iter()
            .enumerate()
            .find(|(_, (at, _))| under(at))?;
        let deeper_tmpfs = self
            .mounts
            .iter()
            .any(|(m, _)| m.len() > at.len() && under(m));
        let deeper_own = match parts.as_slice() {
            [b"proc", ..] | [b"sys", ..] | [b"dev", ..] => at.len() <= 1,
            [b"tmp", ..] => at.len() <= 1,
            _ => false,
        };
        (!deeper_tmpfs && !deeper_own).then_some((i, *writable))
    }

    /// Mount a new tmpfs at `path` (the spec's tmpfs mounts).
    pub fn mount_tmpfs(&mut self, path: &[u8]) {
        let parts: Vec<Vec<u8>> = components(path).into_iter().map(|c| c.to_vec()).collect();
        if parts.is_empty() {
            return;
        }
        let dev = 0x33 + self.mounts.len() as u64;
        self.mounts.push((parts, Arc::new(Tmpfs::new(dev, 0o1777))));
        self.mounts
            .sort_by_key(|(p, _)| core::cmp::Reverse(p.len()));
    }
}
