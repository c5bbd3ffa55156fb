//! Advisory file locks: `flock` locks and POSIX record locks (`fcntl`
//! F_SETLK, per process, and F_OFD_SETLK, per open file description).
//!
//! Locks hang off the inode's identity (st_dev, st_ino), so every
//! descriptor of a file sees them. Owners that went away without unlocking
//! (a closed file description, an exited process) are pruned when the
//! inode's locks are next looked at; whoever releases a file wakes the lock
//! waiters so that they look again.

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use super::File;
use crate::task::Tid;

/// An inode's identity: (st_dev, st_ino).
pub type InodeId = (u64, u64);

/// Who holds a lock.
#[derive(Clone, Debug)]
pub enum Owner {
    /// An open file description (`flock`, OFD locks).
    File(Weak<File>),
    /// A process (classic POSIX locks), by thread-group id.
    Process(Tid),
}

impl Owner {
    pub fn of_file(file: &Arc<File>) -> Owner {
        Owner::File(Arc::downgrade(file))
    }

    pub fn same(&self, other: &Owner) -> bool {
        match (self, other) {
            (Owner::File(a), Owner::File(b)) => Weak::ptr_eq(a, b),
            (Owner::Process(a), Owner::Process(b)) => a == b,
            _ => false,
        }
    }
}

/// A POSIX byte-range lock over `[start, end)`; `end == u64::MAX` reaches
/// past any end of file.
#[derive(Clone, Debug)]
pub struct RangeLock {
    pub owner: Owner,
    pub write: bool,
    pub start: u64,
    pub end: u64,
}

impl RangeLock {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start < end && start < self.end
    }
}

/// The locks of one inode.
#[derive(Debug, Default)]
pub struct InodeLocks {
    /// Wait-key id (the pipe id space) that lock waiters sleep on.
    pub id: u64,
    /// `flock` holders: (file description, exclusive).
    pub flocks: Vec<(Weak<File>, bool)>,
    pub ranges: Vec<RangeLock>,
}

/// Every inode's locks.
#[derive(Debug, Default)]
pub struct LockTable {
    pub inodes: BTreeMap<InodeId, InodeLocks>,
}

impl LockTable {
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    /// The locks of `id`, created empty on first use.
    pub fn inode(&mut self, id: InodeId) -> &mut InodeLocks {
        self.inodes.entry(id).or_insert_with(|| InodeLocks {
            id: super::pipe::next_id(),
            ..Default::default()
        })
    }

    /// Drop the entries of owners that are gone (`alive` says whether a
    /// process still runs), and inodes left with none.
    pub fn prune(&mut self, alive: impl Fn(Tid) -> bool) {
        for l in self.inodes.values_mut() {
            l.flocks.retain(|(f, _)| f.strong_count() > 0);
            l.ranges.retain(|r| match &r.owner {
                Owner::File(f) => f.strong_count() > 0,
                Owner::Process(p) => alive(*p),
            });
        }
        self.inodes
            .retain(|_, l| !l.flocks.is_empty() || !l.ranges.is_empty());
    }
}

impl InodeLocks {
    /// Whether a `flock` by `file` (exclusive or shared) must wait.
    pub fn flock_conflicts(&self, file: &Weak<File>, exclusive: bool) -> bool {
        self.flocks
            .iter()
            .any(|(f, ex)| !Weak::ptr_eq(f, file) && (exclusive || *ex))
    }

    /// Set (or, with `None`, drop) `file`'s `flock`.
    pub fn set_flock(&mut self, file: &Weak<File>, exclusive: Option<bool>) {
        self.flocks.retain(|(f, _)| !Weak::ptr_eq(f, file));
        if let Some(ex) = exclusive {
            self.flocks.push((file.clone(), ex));
        }
    }

    /// The first lock of another owner that conflicts with a lock of this
    /// kind over `[start, end)`.
    pub fn conflict(&self, owner: &Owner, write: bool, start: u64, end: u64) -> Option<&RangeLock> {
        self.ranges
            .iter()
            .find(|r| !r.owner.same(owner) && r.overlaps(start, end) && (write || r.write))
    }

    /// Remove `owner`'s locks over `[start, end)`, splitting any that
    /// stick out on either side.
    pub fn unlock(&mut self, owner: &Owner, start: u64, end: u64) {
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for r in self.ranges.drain(..) {
            if !r.owner.same(owner) || !r.overlaps(start, end) {
                kept.push(r);
                continue;
            }
            if r.start < start {
                kept.push(RangeLock {
                    end: start,
                    ..r.clone()
                });
            }
            if r.end > end {
                kept.push(RangeLock { start: end, ..r });
            }
        }
        self.ranges = kept;
    }

    /// Give `owner` a lock over `[start, end)`, replacing what it held
    /// there, and merging it with its touching locks of the same kind.
    pub fn lock(&mut self, owner: Owner, write: bool, start: u64, end: u64) {
        self.unlock(&owner, start, end);
        let (mut start, mut end) = (start, end);
        self.ranges.retain(|r| {
            let touches = r.start <= end && start <= r.end;
            if r.owner.same(&owner) && r.write == write && touches {
                start = start.min(r.start);
                end = end.max(r.end);
                false
            } else {
                true
            }
        });
        self.ranges.push(RangeLock {
            owner,
            write,
            start,
            end,
        });
    }

    /// Drop every lock of `owner` (the process closed a descriptor of the file).
    pub fn drop_owner(&mut self, owner: &Owner) {
        self.ranges.retain(|r| !r.owner.same(owner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(l: &InodeLocks) -> Vec<(u64, u64, bool)> {
        let mut v: Vec<_> = l.ranges.iter().map(|r| (r.start, r.end, r.write)).collect();
        v.sort();
        v
    }

    #[test]
    fn unlock_splits_and_lock_merges() {
        let mut l = InodeLocks::default();
        let p = Owner::Process(7);
        l.lock(p.clone(), true, 0, 100);
        l.unlock(&p, 40, 60);
        assert_eq!(ranges(&l), [(0, 40, true), (60, 100, true)]);
        l.lock(p.clone(), true, 40, 60);
        assert_eq!(ranges(&l), [(0, 100, true)]);
        // A read lock in the middle replaces that part of the write lock.
        l.lock(p.clone(), false, 10, 20);
        assert_eq!(
            ranges(&l),
            [(0, 10, true), (10, 20, false), (20, 100, true)]
        );
    }

    #[test]
    fn conflicts_need_another_owner_and_a_writer() {
        let mut l = InodeLocks::default();
        let (a, b) = (Owner::Process(1), Owner::Process(2));
        l.lock(a.clone(), false, 0, u64::MAX);
        assert!(l.conflict(&b, false, 5, 6).is_none());
        assert!(l.conflict(&b, true, 5, 6).is_some());
        assert!(l.conflict(&a, true, 5, 6).is_none());
    }
}
