//! AF_UNIX socket pairs (`socketpair`): stream and datagram, with file
//! descriptors passed as `SCM_RIGHTS`.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

use super::File;

/// Bytes a direction buffers before a sender waits (Linux's default
/// socket buffer is of this order).
pub const SOCK_CAPACITY: usize = 208 * 1024;

/// Files in flight, attached to the first byte (stream) or the message
/// (datagram) they were sent with.
type Rights = Vec<Arc<File>>;

#[derive(Debug, Default)]
struct ChannelState {
    /// Stream bytes.
    bytes: VecDeque<u8>,
    /// Stream: (offset of the data they came with, files), in order.
    stream_rights: VecDeque<(u64, Rights)>,
    /// Datagram messages.
    messages: VecDeque<(Vec<u8>, Rights)>,
    /// Total stream bytes ever queued / taken (for rights offsets).
    queued: u64,
    taken: u64,
    writer_closed: bool,
    reader_closed: bool,
}

/// Queued bytes count against the pipes' memory budget (see
/// `pipe::PipeBudget`): past it, a stream holds a page and a datagram
/// queue one message.
impl ChannelState {
    fn held(&self) -> usize {
        self.bytes.capacity() + self.messages.iter().map(|m| m.0.len()).sum::<usize>()
    }
}

impl Drop for ChannelState {
    fn drop(&mut self) {
        super::pipe::PIPE_BUDGET.moved(self.held(), 0);
    }
}

/// One direction of a pair.
#[derive(Debug)]
pub struct Channel {
    /// Wait-key id (shares the pipe id space).
    pub id: u64,
    state: Mutex<ChannelState>,
    pub generation: AtomicU64,
}

impl Channel {
    fn new() -> Self {
        Channel {
            id: super::pipe::next_id(),
            state: Mutex::new(ChannelState::default()),
            generation: AtomicU64::new(0),
        }
    }
}

/// What a send or receive could do now.
#[derive(Debug)]
pub enum SockIo<T> {
    Done(T),
    WouldBlock,
    /// Send: the peer is gone (EPIPE). Receive: end of stream.
    Closed,
}

/// One end of a socket pair.
#[derive(Debug)]
pub struct UnixSocket {
    pub rx: Arc<Channel>,
    pub tx: Arc<Channel>,
    pub dgram: bool,
    pub flags: AtomicU32,
}

impl UnixSocket {
    /// A connected pair.
    pub fn pair(dgram: bool, flags: u32) -> (UnixSocket, UnixSocket) {
        let (a, b) = (Arc::new(Channel::new()), Arc::new(Channel::new()));
        (
            UnixSocket {
                rx: a.clone(),
                tx: b.clone(),
                dgram,
                flags: AtomicU32::new(flags),
            },
            UnixSocket {
                rx: b,
                tx: a,
                dgram,
                flags: AtomicU32::new(flags),
            },
        )
    }

    /// Queue `data` (and `rights`) to the peer.
    pub fn send(&self, data: &[u8], rights: Rights) -> SockIo<usize> {
        self.tx.generation.fetch_add(1, Ordering::Relaxed);
        let mut s = self.tx.state.lock();
        if s.reader_closed {
            return SockIo::Closed;
        }
        let budget = &super::pipe::PIPE_BUDGET;
        if self.dgram {
            let used: usize = s.messages.iter().map(|m| m.0.len()).sum();
            let full = used + data.len() > SOCK_CAPACITY || budget.over();
            if full && !s.messages.is_empty() {
                return SockIo::WouldBlock;
            }
            let mut msg = Vec::new();
            if msg.try_reserve_exact(data.len()).is_err() {
                return SockIo::WouldBlock;
            }
            msg.extend_from_slice(data);
            budget.moved(0, data.len());
            s.messages.push_back((msg, rights));
            return SockIo::Done(data.len());
        }
        let capacity = if budget.over() {
            super::pipe::PIPE_BUF
        } else {
            SOCK_CAPACITY
        };
        let room = capacity.saturating_sub(s.bytes.len());
        if room == 0 || data.is_empty() && rights.is_empty() {
            return if data.is_empty() {
                SockIo::Done(0)
            } else {
                SockIo::WouldBlock
            };
        }
        let n = room.min(data.len());
        let before = s.bytes.capacity();
        if s.bytes.try_reserve(n).is_err() {
            return SockIo::WouldBlock;
        }
        if !rights.is_empty() {
            let at = s.queued;
            s.stream_rights.push_back((at, rights));
        }
        s.bytes.extend(&data[..n]);
        budget.moved(before, s.bytes.capacity());
        s.queued += n as u64;
        SockIo::Done(n)
    }

    /// Take up to `max` bytes (one message for datagrams), with the files
    /// that came with them.
    pub fn recv(&self, max: usize, peek: bool) -> SockIo<(Vec<u8>, Rights, bool)> {
        self.rx.generation.fetch_add(1, Ordering::Relaxed);
        let mut s = self.rx.state.lock();
        if self.dgram {
            let Some((msg, _)) = s.messages.front() else {
                return if s.writer_closed {
                    SockIo::Closed
                } else {
                    SockIo::WouldBlock
                };
            };
            let truncated = msg.len() > max;
            let data = msg[..msg.len().min(max)].to_vec();
            if peek {
                return SockIo::Done((data, Vec::new(), truncated));
            }
            let (msg, rights) = s.messages.pop_front().unwrap_or_default();
            super::pipe::PIPE_BUDGET.moved(msg.len(), 0);
            return SockIo::Done((data, rights, truncated));
        }
        if s.bytes.is_empty() {
            return if s.writer_closed {
                SockIo::Closed
            } else {
                SockIo::WouldBlock
            };
        }
        // Stop at the next message that carries files, so they arrive with
        // their own bytes, as on Linux.
        let start = s.taken;
        let mut n = max.min(s.bytes.len());
        if let Some((at, _)) = s.stream_rights.iter().find(|(at, _)| *at > start) {
            n = n.min((*at - start) as usize);
        }
        let data: Vec<u8> = if peek {
            s.bytes.iter().take(n).copied().collect()
        } else {
            s.bytes.drain(..n).collect()
        };
        if s.bytes.is_empty() && s.bytes.capacity() > super::pipe::PIPE_BUF {
            let before = s.bytes.capacity();
            s.bytes.shrink_to(super::pipe::PIPE_BUF);
            super::pipe::PIPE_BUDGET.moved(before, s.bytes.capacity());
        }
        let mut rights = Vec::new();
        if !peek {
            s.taken += n as u64;
            while s
                .stream_rights
                .front()
                .is_some_and(|(at, _)| *at < start + n as u64)
            {
                if let Some((_, r)) = s.stream_rights.pop_front() {
                    rights.extend(r);
                }
            }
        }
        SockIo::Done((data, rights, false))
    }

    /// (readable, writable, peer gone) for poll.
    pub fn readiness(&self) -> (bool, bool, bool) {
        let r = self.rx.state.lock();
        let readable = !r.bytes.is_empty() || !r.messages.is_empty() || r.writer_closed;
        let hup = r.writer_closed;
        drop(r);
        let w = self.tx.state.lock();
        let writable = w.reader_closed || w.bytes.len() < SOCK_CAPACITY;
        (readable, writable, hup || w.reader_closed)
    }

    /// `shutdown(2)`: stop reading and/or writing.
    pub fn shutdown(&self, read: bool, write: bool) {
        if read {
            self.rx.state.lock().reader_closed = true;
        }
        if write {
            self.tx.state.lock().writer_closed = true;
        }
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        self.shutdown(true, true);
        // Files still in flight towards us are dropped with the socket.
        let mut s = self.rx.state.lock();
        s.stream_rights.clear();
        let queued: usize = s.messages.iter().map(|m| m.0.len()).sum();
        super::pipe::PIPE_BUDGET.moved(queued, 0);
        s.messages.clear();
    }
}
