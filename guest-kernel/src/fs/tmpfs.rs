//! tmpfs: an in-memory tree of inodes. It serves `/tmp` and `/dev/shm`,
//! and is the upper layer of the root overlay (where it also records
//! whiteouts for names deleted from the host's lower layer).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use spin::Mutex;

use crate::abi::linux::{Stat, S_IFDIR, S_IFLNK, S_IFREG};
use crate::abi::{Errno, KResult};

/// Inode number of a tmpfs root.
pub const ROOT_INO: u64 = 1;
/// Longest file a tmpfs holds: Linux's `MAX_LFS_FILESIZE`. Contents are
/// paged and sparse, so only what is written costs memory.
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InodeKind {
    /// `opaque`: in an overlay, hides the lower directory of the same path.
    Dir {
        entries: BTreeMap<Vec<u8>, u64>,
        parent: u64,
        opaque: bool,
    },
    File {
        data: super::filedata::FileData,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// An overlay whiteout: the lower name is deleted.
    Whiteout,
}

/// A tmpfs inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub kind: InodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    /// (seconds, nanoseconds) of the last modification and status change.
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

#[derive(Debug)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    /// Open files per inode: an inode whose last name goes while it is
    /// open lives on (nlink 0) until the last close.
    open: BTreeMap<u64, usize>,
    next_ino: u64,
}

/// One tmpfs instance.
#[derive(Debug)]
pub struct Tmpfs {
    /// Device number reported by `stat`.
    pub dev: u64,
    state: Mutex<State>,
}

impl Tmpfs {
    pub fn new(dev: u64, mode: u32) -> Self {
        let mut inodes = BTreeMap::new();
        inodes.insert(
            ROOT_INO,
            Inode {
                kind: InodeKind::Dir {
                    entries: BTreeMap::new(),
                    parent: ROOT_INO,
                    opaque: false,
                },
                mode: S_IFDIR | (mode & 0o7777),
                uid: 0,
                gid: 0,
                nlink: 2,
                mtime: (0, 0),
                ctime: (0, 0),
            },
        );
        Tmpfs {
            dev,
            state: Mutex::new(State {
                inodes,
                open: BTreeMap::new(),
                next_ino: ROOT_INO + 1,
            }),
        }
    }

    /// A copy of an inode, but for a directory's entries (list them with
    /// `entries`): copying them made every create in a big directory cost
    /// as much as listing it.
    pub fn inode(&self, ino: u64) -> KResult<Inode> {
        let st = self.state.lock();
        let i = st.inodes.get(&ino).ok_or(Errno::ENOENT)?;
        let kind = match &i.kind {
            InodeKind::Dir { parent, opaque, .. } => InodeKind::Dir {
                entries: BTreeMap::new(),
                parent: *parent,
                opaque: *opaque,
            },
            other => other.clone(),
        };
        Ok(Inode {
            kind,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            nlink: i.nlink,
            mtime: i.mtime,
            ctime: i.ctime,
        })
    }

    /// The child `name` of directory `dir`.
    pub fn lookup(&self, dir: u64, name: &[u8]) -> KResult<Option<u64>> {
        let st = self.state.lock();
        match &st.inodes.get(&dir).ok_or(Errno::ENOENT)?.kind {
            InodeKind::Dir {
                entries, parent, ..
            } => Ok(match name {
                b"." => Some(dir),
                b".." => Some(*parent),
                _ => entries.get(name).copied(),
            }),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Create `name` in `dir`; `EEXIST` if a live entry is there (a
    /// whiteout is replaced).
    pub fn create(
        &self,
        dir: u64,
        name: &[u8],
        kind: InodeKind,
        mode: u32,
        owner: (u32, u32),
        now: (i64, i64),
    ) -> KResult<u64> {
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Errno::EEXIST);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut st = self.state.lock();
        let ino = st.next_ino;
        let is_dir = matches!(kind, InodeKind::Dir { .. });
        let kind = match kind {
            InodeKind::Dir {
                entries, opaque, ..
            } => InodeKind::Dir {
                entries,
                parent: dir,
                opaque,
            },
            k => k,
        };
        let old = {
            let d = st.inodes.get_mut(&dir).ok_or(Errno::ENOENT)?;
            let InodeKind::Dir { entries, .. } = &mut d.kind else {
                return Err(Errno::ENOTDIR);
            };
            entries.get(name).copied()
        };
        if let Some(old) = old {
            if st.inodes.get(&old).map(|i| &i.kind) != Some(&InodeKind::Whiteout) {
                return Err(Errno::EEXIST);
            }
            st.inodes.remove(&old);
        }
        let type_bits = match kind {
            InodeKind::Dir { .. } => S_IFDIR,
            InodeKind::File { .. } => S_IFREG,
            InodeKind::Symlink { .. } => S_IFLNK,
            InodeKind::Whiteout => 0o020000, // a 0/0 character device, as overlayfs
        };
        st.inodes.insert(
            ino,
            Inode {
                kind,
                mode: type_bits | (mode & 0o7777),
                uid: owner.0,
                gid: owner.1,
                nlink: if is_dir { 2 } else { 1 },
                mtime: now,
                ctime: now,
            },
        );
        st.next_ino += 1;
        let d = st.inodes.get_mut(&dir).ok_or(Errno::ENOENT)?;
        if let InodeKind::Dir { entries, .. } = &mut d.kind {
            entries.insert(name.to_vec(), ino);
        }
        d.mtime = now;
        if is_dir {
            d.nlink += 1;
        }
        Ok(ino)
    }

    /// Remove the entry `name` from `dir` (the inode goes with its last
    /// link). Directories must be empty of live entries.
    pub fn remove(&self, dir: u64, name: &[u8]) -> KResult<()> {
        let mut st = self.state.lock();
        let ino = match &st.inodes.get(&dir).ok_or(Errno::ENOENT)?.kind {
            InodeKind::Dir { entries, .. } => *entries.get(name).ok_or(Errno::ENOENT)?,
            _ => return Err(Errno::ENOTDIR),
        };
        let is_dir =
            if let Some(InodeKind::Dir { entries, .. }) = st.inodes.get(&ino).map(|i| &i.kind) {
                let live = entries
                    .values()
                    .any(|c| st.inodes.get(c).map(|i| &i.kind) != Some(&InodeKind::Whiteout));
                if live {
                    return Err(Errno::ENOTEMPTY);
                }
                true
            } else {
                false
            };
        if let Some(d) = st.inodes.get_mut(&dir) {
            if let InodeKind::Dir { entries, .. } = &mut d.kind {
                entries.remove(name);
            }
            if is_dir {
                d.nlink -= 1;
            }
        }
        let gone = match st.inodes.get_mut(&ino) {
            Some(i) if !is_dir && i.nlink > 1 => {
                i.nlink -= 1;
                false
            }
            _ => true,
        };
        if gone && !is_dir && st.open.contains_key(&ino) {
            if let Some(i) = st.inodes.get_mut(&ino) {
                i.nlink = 0;
            }
            return Ok(());
        }
        if gone {
            // A removed directory's whiteouts go with it.
            if let Some(Inode {
                kind: InodeKind::Dir { entries, .. },
                ..
            }) = st.inodes.remove(&ino)
            {
                for c in entries.values() {
                    st.inodes.remove(c);
                }
            }
        }
        Ok(())
    }

    /// Move `name` of `dir` to `new_name` of `new_dir`, replacing a
    /// non-directory (or empty directory) target.
    pub fn rename(&self, dir: u64, name: &[u8], new_dir: u64, new_name: &[u8]) -> KResult<()> {
        if new_name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let ino = self.lookup(dir, name)?.ok_or(Errno::ENOENT)?;
        if let Some(existing) = self.lookup(new_dir, new_name)? {
            if existing == ino {
                return Ok(());
            }
            let src_dir = matches!(self.inode(ino)?.kind, InodeKind::Dir { .. });
            match self.inode(existing)?.kind {
                InodeKind::Dir { .. } if !src_dir => return Err(Errno::EISDIR),
                InodeKind::Whiteout => {}
                InodeKind::Dir { .. } => {}
                _ if src_dir => return Err(Errno::ENOTDIR),
                _ => {}
            }
            self.remove(new_dir, new_name)?;
        }
        // A directory may not move beneath itself.
        let mut p = new_dir;
        loop {
            if p == ino {
                return Err(Errno::EINVAL);
            }
            let Ok(Inode {
                kind: InodeKind::Dir { parent, .. },
                ..
            }) = self.inode(p)
            else {
                break;
            };
            if parent == p {
                break;
            }
            p = parent;
        }
        let mut st = self.state.lock();
        let is_dir = matches!(
            st.inodes.get(&ino).map(|i| &i.kind),
            Some(InodeKind::Dir { .. })
        );
        if let Some(InodeKind::Dir { entries, .. }) = st.inodes.get_mut(&dir).map(|i| &mut i.kind) {
            entries.remove(name);
        }
        if let Some(InodeKind::Dir { entries, .. }) =
            st.inodes.get_mut(&new_dir).map(|i| &mut i.kind)
        {
            entries.insert(new_name.to_vec(), ino);
        }
        if is_dir {
            if let Some(InodeKind::Dir { parent, .. }) =
                st.inodes.get_mut(&ino).map(|i| &mut i.kind)
            {
                *parent = new_dir;
            }
            if let Some(d) = st.inodes.get_mut(&dir) {
                d.nlink -= 1;
            }
            if let Some(d) = st.inodes.get_mut(&new_dir) {
                d.nlink += 1;
            }
        }
        Ok(())
    }

    /// Add a hard link `name` in `dir` to the non-directory `ino`.
    pub fn link(&self, ino: u64, dir: u64, name: &[u8]) -> KResult<()> {
        if self
            .lookup(dir, name)?
            .is_some_and(|e| self.inode(e).map(|i| i.kind) != Ok(InodeKind::Whiteout))
        {
            return Err(Errno::EEXIST);
        }
        let mut st = self.state.lock();
        match st.inodes.get_mut(&ino) {
            Some(i) if matches!(i.kind, InodeKind::Dir { .. }) => return Err(Errno::EPERM),
            Some(i) => i.nlink += 1,
            None => return Err(Errno::ENOENT),
        }
        if let Some(InodeKind::Dir { entries, .. }) = st.inodes.get_mut(&dir).map(|i| &mut i.kind) {
            if let Some(old) = entries.insert(name.to_vec(), ino) {
                st.inodes.remove(&old);
            }
        }
        Ok(())
    }

    /// A regular file's contents.
    pub fn data(&self, ino: u64) -> KResult<super::filedata::FileData> {
        match &self
            .state
            .lock()
            .inodes
            .get(&ino)
            .ok_or(Errno::ENOENT)?
            .kind
        {
            InodeKind::File { data } => Ok(data.clone()),
            InodeKind::Dir { .. } => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// A file of `ino` was opened.
    pub fn hold(&self, ino: u64) {
        *self.state.lock().open.entry(ino).or_insert(0) += 1;
    }

    /// A file of `ino` was closed: an unlinked inode goes with its last.
    pub fn release(&self, ino: u64) {
        let mut st = self.state.lock();
        let Some(n) = st.open.get_mut(&ino) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            st.open.remove(&ino);
            if st.inodes.get(&ino).is_some_and(|i| i.nlink == 0) {
                st.inodes.remove(&ino);
            }
        }
    }

    /// Read from a regular file at `off`.
    pub fn read(&self, ino: u64, buf: &mut [u8], off: u64) -> KResult<usize> {
        Ok(self.data(ino)?.read(buf, off))
    }

    /// Write to a regular file at `off` (growing it; a gap reads as zeros).
    pub fn write(&self, ino: u64, data: &[u8], off: u64, now: (i64, i64)) -> KResult<usize> {
        let end = off.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let n = self.data(ino)?.write(data, off)?;
        self.set_mtime(ino, now)?;
        Ok(n)
    }

    /// Set a regular file's size.
    pub fn truncate(&self, ino: u64, len: u64, now: (i64, i64)) -> KResult<()> {
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        self.data(ino)?.truncate(len);
        self.set_mtime(ino, now)
    }

    /// Change an inode's permission bits and owner.
    pub fn set_attr(
        &self,
        ino: u64,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
        now: (i64, i64),
    ) -> KResult<()> {
        let mut st = self.state.lock();
        let i = st.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if let Some(m) = mode {
            i.mode = (i.mode & !0o7777) | (m & 0o7777);
        }
        if let Some((u, g)) = owner {
            if u != u32::MAX {
                i.uid = u;
            }
            if g != u32::MAX {
                i.gid = g;
            }
        }
        i.ctime = now;
        Ok(())
    }

    /// Set the modification time.
    pub fn set_mtime(&self, ino: u64, t: (i64, i64)) -> KResult<()> {
        let mut st = self.state.lock();
        st.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?.mtime = t;
        Ok(())
    }

    /// Mark a directory opaque (it hides the lower directory).
    pub fn set_opaque(&self, ino: u64) {
        if let Some(InodeKind::Dir { opaque, .. }) =
            self.state.lock().inodes.get_mut(&ino).map(|i| &mut i.kind)
        {
            *opaque = true;
        }
    }

    /// The entries of a directory, as (name, ino, kind) with whiteouts.
    pub fn entries(&self, dir: u64) -> KResult<Vec<(Vec<u8>, u64, InodeKind)>> {
        let st = self.state.lock();
        match &st.inodes.get(&dir).ok_or(Errno::ENOENT)?.kind {
            InodeKind::Dir { entries, .. } => Ok(entries
                .iter()
                .map(|(n, i)| {
                    let kind = st.inodes.get(i).map(|x| x.kind.clone());
                    (n.clone(), *i, kind.unwrap_or(InodeKind::Whiteout))
                })
                .collect()),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// `stat` of an inode.
    pub fn stat(&self, ino: u64) -> KResult<Stat> {
        let st = self.state.lock();
        let i = st.inodes.get(&ino).ok_or(Errno::ENOENT)?;
        let size = match &i.kind {
            InodeKind::File { data } => data.size() as i64,
            InodeKind::Symlink { target } => target.len() as i64,
            InodeKind::Dir { entries, .. } => 4096.max(entries.len() as i64 * 32),
            InodeKind::Whiteout => 0,
        };
        Ok(Stat {
            st_dev: self.dev,
            st_ino: ino,
            st_nlink: i.nlink,
            st_mode: i.mode,
            st_uid: i.uid,
            st_gid: i.gid,
            st_size: size,
            st_blksize: 4096,
            st_blocks: match &i.kind {
                InodeKind::File { data } => data.allocated() as i64 / 512,
                _ => (size + 511) / 512,
            },
            st_atime: i.mtime.0,
            st_atime_nsec: i.mtime.1,
            st_mtime: i.mtime.0,
            st_mtime_nsec: i.mtime.1,
            st_ctime: i.ctime.0,
            st_ctime_nsec: i.ctime.1,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> InodeKind {
        InodeKind::File {
            data: Default::default(),
        }
    }

    fn dir() -> InodeKind {
        InodeKind::Dir {
            entries: BTreeMap::new(),
            parent: 0,
            opaque: false,
        }
    }

    #[test]
    fn create_write_read_rename_remove() {
        let t = Tmpfs::new(7, 0o1777);
        let d = t
            .create(ROOT_INO, b"d", dir(), 0o755, (0, 0), (1, 0))
            .unwrap();
        let f = t.create(d, b"f", file(), 0o644, (0, 0), (1, 0)).unwrap();
        assert_eq!(
            t.create(d, b"f", file(), 0o644, (0, 0), (1, 0)),
            Err(Errno::EEXIST)
        );
        assert_eq!(t.write(f, b"hello", 3, (2, 0)), Ok(5));
        let mut buf = [0xffu8; 16];
        assert_eq!(t.read(f, &mut buf, 0), Ok(8));
        assert_eq!(&buf[..8], b"\0\0\0hello");
        assert_eq!(t.stat(f).unwrap().st_size, 8);
        t.truncate(f, 2, (3, 0)).unwrap();
        assert_eq!(t.stat(f).unwrap().st_size, 2);
        t.rename(d, b"f", ROOT_INO, b"g").unwrap();
        assert_eq!(t.lookup(d, b"f"), Ok(None));
        assert_eq!(t.lookup(ROOT_INO, b"g"), Ok(Some(f)));
        assert_eq!(t.remove(ROOT_INO, b"d"), Ok(()));
        t.link(f, ROOT_INO, b"h").unwrap();
        assert_eq!(t.stat(f).unwrap().st_nlink, 2);
        t.remove(ROOT_INO, b"g").unwrap();
        assert_eq!(t.read(f, &mut buf, 0), Ok(2));
        assert_eq!(
            t.rename(ROOT_INO, b"nope", ROOT_INO, b"x"),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            t.create(ROOT_INO, &[b'a'; 256], file(), 0, (0, 0), (0, 0)),
            Err(Errno::ENAMETOOLONG)
        );
    }

    #[test]
    fn directories_must_be_empty_and_cannot_move_into_themselves() {
        let t = Tmpfs::new(7, 0o755);
        let a = t
            .create(ROOT_INO, b"a", dir(), 0o755, (0, 0), (0, 0))
            .unwrap();
        let b = t.create(a, b"b", dir(), 0o755, (0, 0), (0, 0)).unwrap();
        assert_eq!(t.remove(ROOT_INO, b"a"), Err(Errno::ENOTEMPTY));
        assert_eq!(t.rename(ROOT_INO, b"a", b, b"x"), Err(Errno::EINVAL));
        t.create(b, b"w", InodeKind::Whiteout, 0, (0, 0), (0, 0))
            .unwrap();
        // Whiteouts do not count as contents.
        assert_eq!(t.remove(a, b"b"), Ok(()));
        assert_eq!(t.write(1 << 40, b"x", 0, (0, 0)), Err(Errno::ENOENT));
    }
}
