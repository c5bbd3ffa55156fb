//! epoll instances: an interest list of (descriptor, file) pairs.

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};

use spin::Mutex;

use super::File;

/// One registered descriptor.
#[derive(Debug)]
pub struct Interest {
    /// The file the descriptor named at `EPOLL_CTL_ADD`; dropped with it.
    pub file: Weak<File>,
    pub events: u32,
    pub data: u64,
    /// `EPOLLONESHOT` reported: silent until re-armed by `EPOLL_CTL_MOD`.
    pub disabled: bool,
    /// Edge-triggered: the file's event generation last reported.
    pub seen: u64,
}

/// An epoll instance.
#[derive(Debug, Default)]
pub struct Epoll {
    pub interest: Mutex<BTreeMap<i32, Interest>>,
}

impl Epoll {
    /// Whether `file` is this instance (a loop through itself).
    pub fn is(&self, file: &Arc<File>) -> bool {
        matches!(&**file, File::Epoll(e) if core::ptr::eq(e, self))
    }
}
