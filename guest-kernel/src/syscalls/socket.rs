//! socketpair(AF_UNIX) and its I/O: sendmsg/recvmsg with SCM_RIGHTS,
//! send/recv, shutdown, and the socket options programs ask for.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{arg_fd, arg_i32, Args};
use crate::abi::linux::RLIMIT_NOFILE;
use crate::abi::{Errno, KResult};
use crate::fs::socket::{SockIo, UnixSocket};
use crate::fs::{File, O_NONBLOCK};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::WaitKey;

const AF_UNIX: u64 = 1;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_SEQPACKET: u64 = 5;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const MSG_PEEK: u64 = 2;
const MSG_TRUNC: u64 = 0x20;
const MSG_DONTWAIT: u64 = 0x40;
const MSG_NOSIGNAL: u64 = 0x4000;
const MSG_CMSG_CLOEXEC: u64 = 0x4000_0000;
const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const SO_TYPE: i32 = 3;
const SO_ERROR: i32 = 4;
const SO_SNDBUF: i32 = 7;
const SO_RCVBUF: i32 = 8;
/// Descriptors one `SCM_RIGHTS` message may carry (`SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
/// Largest single transfer handled at once.
const MAX_IO: u64 = 1 << 20;

/// socket(2): only AF_UNIX pairs exist in the sandbox so far.
pub fn sys_socket<P: Platform>(_k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let _ = a;
    Err(Errno::EAFNOSUPPORT)
}

/// socketpair(2).
pub fn sys_socketpair<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[0] != AF_UNIX {
        return Err(Errno::EAFNOSUPPORT);
    }
    let kind = a[1] & !(SOCK_NONBLOCK | SOCK_CLOEXEC);
    let dgram = match kind {
        SOCK_STREAM => false,
        SOCK_DGRAM | SOCK_SEQPACKET => true,
        _ => return Err(Errno::EINVAL),
    };
    if a[2] != 0 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let flags = if a[1] & SOCK_NONBLOCK != 0 {
        O_NONBLOCK
    } else {
        0
    };
    let cloexec = a[1] & SOCK_CLOEXEC != 0;
    let (x, y) = UnixSocket::pair(dgram, flags);
    let limit = k.group().rlimits[RLIMIT_NOFILE as usize].0;
    let fx = k
        .group_mut()
        .fds
        .install(Arc::new(File::Socket(x)), cloexec, limit)?;
    let fy = match k
        .group_mut()
        .fds
        .install(Arc::new(File::Socket(y)), cloexec, limit)
    {
        Ok(fd) => fd,
        Err(e) => {
            let _ = super::fd::close_fd(k, fx);
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&fx.to_le_bytes());
    b[4..].copy_from_slice(&fy.to_le_bytes());
    if let Err(e) = k.copy_out(a[3], &b) {
        let _ = super::fd::close_fd(k, fx);
        let _ = super::fd::close_fd(k, fy);
        return Err(e);
    }
    Ok(0)
}

fn socket_of(file: &Arc<File>) -> KResult<&UnixSocket> {
    match &**file {
        File::Socket(s) => Ok(s),
        _ => Err(Errno::ENOTSOCK),
    }
}

fn nonblocking(s: &UnixSocket, flags: u64) -> bool {
    flags & MSG_DONTWAIT != 0 || s.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0
}

/// Send `data` with `rights`: the shared body of write, send and sendmsg.
pub fn send_data<P: Platform>(
    k: &mut Kernel<'_, P>,
    s: &UnixSocket,
    data: &[u8],
    rights: Vec<Arc<File>>,
    flags: u64,
) -> KResult<u64> {
    match s.send(data, rights) {
        SockIo::Done(n) => {
            k.wake(WaitKey::Pipe(s.tx.id), usize::MAX);
            Ok(n as u64)
        }
        SockIo::Closed => {
            if flags & MSG_NOSIGNAL == 0 {
                return Err(super::io::raise_sigpipe(k));
            }
            Err(Errno::EPIPE)
        }
        SockIo::WouldBlock if nonblocking(s, flags) => Err(Errno::EAGAIN),
        SockIo::WouldBlock => Err(k.block(WaitKey::Pipe(s.tx.id), None)),
    }
}

/// Receive up to `max` bytes: the shared body of read, recv and recvmsg.
pub fn recv_data<P: Platform>(
    k: &mut Kernel<'_, P>,
    s: &UnixSocket,
    max: usize,
    flags: u64,
) -> KResult<(Vec<u8>, Vec<Arc<File>>, bool)> {
    match s.recv(max, flags & MSG_PEEK != 0) {
        SockIo::Done(r) => {
            k.wake(WaitKey::Pipe(s.rx.id), usize::MAX);
            Ok(r)
        }
        SockIo::Closed => Ok((Vec::new(), Vec::new(), false)),
        SockIo::WouldBlock if nonblocking(s, flags) => Err(Errno::EAGAIN),
        SockIo::WouldBlock => Err(k.block(WaitKey::Pipe(s.rx.id), None)),
    }
}

/// The iovecs of a `msghdr` as (base, len).
fn iovecs<P: Platform>(k: &mut Kernel<'_, P>, iov: u64, cnt: u64) -> KResult<Vec<(u64, u64)>> {
    if cnt > 1024 {
        return Err(Errno::EMSGSIZE);
    }
    let mut raw = vec![0u8; cnt as usize * 16];
    k.copy_in(iov, &mut raw)?;
    Ok(raw
        .chunks_exact(16)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[..8]);
            let base = u64::from_le_bytes(b);
            b.copy_from_slice(&c[8..]);
            (base, u64::from_le_bytes(b))
        })
        .collect())
}

fn read_msghdr<P: Platform>(k: &mut Kernel<'_, P>, msg: u64) -> KResult<[u64; 7]> {
    let mut h = [0u8; 56];
    k.copy_in(msg, &mut h)?;
    let mut out = [0u64; 7];
    for (i, v) in out.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i * 8..i * 8 + 8]);
        *v = u64::from_le_bytes(b);
    }
    // name, namelen, iov, iovlen, control, controllen, flags
    Ok(out)
}

/// sendmsg(2).
pub fn sys_sendmsg<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let s = socket_of(&file)?;
    let [_, _, iov, iovlen, control, controllen, _] = read_msghdr(k, a[1])?;
    let mut data = Vec::new();
    for (base, len) in iovecs(k, iov, iovlen)? {
        if data.len() as u64 + len > MAX_IO {
            return Err(Errno::EMSGSIZE);
        }
        let mut chunk = vec![0u8; len as usize];
        k.copy_in(base, &mut chunk)?;
        data.extend_from_slice(&chunk);
    }
    let mut rights = Vec::new();
    if control != 0 && controllen >= 16 {
        let controllen = controllen.min(4096);
        let mut c = vec![0u8; controllen as usize];
        k.copy_in(control, &mut c)?;
        let mut off = 0usize;
        while off + 16 <= c.len() {
            let len =
                u64::from_le_bytes(c[off..off + 8].try_into().map_err(|_| Errno::EINVAL)?) as usize;
            let level =
                i32::from_le_bytes(c[off + 8..off + 12].try_into().map_err(|_| Errno::EINVAL)?);
            let kind = i32::from_le_bytes(
                c[off + 12..off + 16]
                    .try_into()
                    .map_err(|_| Errno::EINVAL)?,
            );
            if len < 16 || off + len > c.len() {
                return Err(Errno::EINVAL);
            }
            if level == SOL_SOCKET && kind == SCM_RIGHTS {
                for f in c[off + 16..off + len].chunks_exact(4) {
                    if rights.len() >= SCM_MAX_FD {
                        return Err(Errno::EINVAL);
                    }
                    let fd = i32::from_le_bytes([f[0], f[1], f[2], f[3]]);
                    rights.push(k.group().fds.get(fd)?);
                }
            }
            off += len.next_multiple_of(8);
        }
    }
    send_data(k, s, &data, rights, a[2])
}

/// recvmsg(2).
pub fn sys_recvmsg<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let s = socket_of(&file)?;
    let [_, _, iov, iovlen, control, controllen, _] = read_msghdr(k, a[1])?;
    let iovs = iovecs(k, iov, iovlen)?;
    let total: u64 = iovs.iter().map(|v| v.1).sum::<u64>().min(MAX_IO);
    let (data, rights, truncated) = recv_data(k, s, total as usize, a[2])?;
    let mut off = 0usize;
    for (base, len) in iovs {
        if off >= data.len() {
            break;
        }
        let n = (len as usize).min(data.len() - off);
        k.copy_out(base, &data[off..off + n])?;
        off += n;
    }
    // Install passed files and describe them in the control buffer.
    let mut msg_flags = if truncated { MSG_TRUNC } else { 0 };
    let mut ctl_len = 0u64;
    if !rights.is_empty() {
        let cloexec = a[2] & MSG_CMSG_CLOEXEC != 0;
        let room = if control == 0 {
            0
        } else {
            (controllen.saturating_sub(16) / 4) as usize
        };
        let limit = k.group().rlimits[RLIMIT_NOFILE as usize].0;
        let mut fds: Vec<i32> = Vec::new();
        for f in rights.into_iter() {
            if fds.len() >= room {
                msg_flags |= 0x8; // MSG_CTRUNC
                break;
            }
            fds.push(k.group_mut().fds.install(f, cloexec, limit)?);
        }
        if !fds.is_empty() {
            let len = 16 + 4 * fds.len();
            let mut c = vec![0u8; len.next_multiple_of(8)];
            c[..8].copy_from_slice(&(len as u64).to_le_bytes());
            c[8..12].copy_from_slice(&SOL_SOCKET.to_le_bytes());
            c[12..16].copy_from_slice(&SCM_RIGHTS.to_le_bytes());
            for (i, fd) in fds.iter().enumerate() {
                c[16 + 4 * i..20 + 4 * i].copy_from_slice(&fd.to_le_bytes());
            }
            k.copy_out(control, &c)?;
            ctl_len = c.len() as u64;
        }
    }
    // msg_controllen and msg_flags go back into the msghdr.
    k.copy_out(a[1] + 40, &ctl_len.to_le_bytes())?;
    k.copy_out(a[1] + 48, &(msg_flags as u32).to_le_bytes())?;
    Ok(data.len() as u64)
}

/// sendto(2) / send(2) (the address must be absent: the pair is connected).
pub fn sys_sendto<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let s = socket_of(&file)?;
    if a[4] != 0 {
        return Err(Errno::EISCONN);
    }
    let mut data = vec![0u8; a[2].min(MAX_IO) as usize];
    k.copy_in(a[1], &mut data)?;
    send_data(k, s, &data, Vec::new(), a[3])
}

/// recvfrom(2) / recv(2).
pub fn sys_recvfrom<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let s = socket_of(&file)?;
    let (data, _rights, _) = recv_data(k, s, a[2].min(MAX_IO) as usize, a[3])?;
    k.copy_out(a[1], &data)?;
    if a[5] != 0 {
        k.copy_out(a[5], &0u32.to_le_bytes())?; // no peer address
    }
    Ok(data.len() as u64)
}

/// shutdown(2).
pub fn sys_shutdown<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let s = socket_of(&file)?;
    match a[1] {
        0 => s.shutdown(true, false),
        1 => s.shutdown(false, true),
        2 => s.shutdown(true, true),
        _ => return Err(Errno::EINVAL),
    }
    k.wake(WaitKey::Pipe(s.rx.id), usize::MAX);
    k.wake(WaitKey::Pipe(s.tx.id), usize::MAX);
    Ok(0)
}

/// getsockopt(2): type, pending error and buffer sizes.
pub fn sys_getsockopt<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let s = socket_of(&file)?;
    if arg_i32(a[1]) != SOL_SOCKET {
        return Err(Errno::ENOPROTOOPT);
    }
    let v: i32 = match arg_i32(a[2]) {
        SO_TYPE => {
            if s.dgram {
                2
            } else {
                1
            }
        }
        SO_ERROR => 0,
        SO_SNDBUF | SO_RCVBUF => crate::fs::socket::SOCK_CAPACITY as i32,
        _ => return Err(Errno::ENOPROTOOPT),
    };
    k.copy_out(a[3], &v.to_le_bytes())?;
    k.copy_out(a[4], &4u32.to_le_bytes())?;
    Ok(0)
}

/// setsockopt(2): accepted on socket pairs, with no effect.
pub fn sys_setsockopt<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    socket_of(&file)?;
    Ok(0)
}

/// getsockname(2), getpeername(2): an unnamed AF_UNIX address.
pub fn sys_getsockname<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    socket_of(&file)?;
    k.copy_out(a[1], &(AF_UNIX as u16).to_le_bytes())?;
    k.copy_out(a[2], &2u32.to_le_bytes())?;
    Ok(0)
}
