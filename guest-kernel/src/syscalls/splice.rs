//! sendfile, splice, tee and copy_file_range: moving bytes between two
//! files without a trip through user memory.
//!
//! Data moves in chunks through a sentry buffer. Each chunk is sized to what
//! the destination can take right now, so a chunk read from the source is
//! never lost to a full destination; the sentry runs one task at a time, so
//! that room cannot shrink between the check and the write.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{arg_fd, Args};
use crate::abi::{Errno, KResult};
use crate::fs::pipe::{PipeIo, PIPE_CAPACITY};
use crate::fs::{DevKind, File, PipeEnd, O_NONBLOCK};
use crate::kernel::Kernel;
use crate::platform::{HostOps, Platform};
use crate::task::WaitKey;

/// Linux's cap on one transfer.
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// Bytes moved per step.
const CHUNK: usize = 64 * 1024;
/// `SPLICE_F_NONBLOCK`.
const SPLICE_F_NONBLOCK: u64 = 2;
/// Flags `splice`/`tee` accept (MOVE, NONBLOCK, MORE, GIFT).
const SPLICE_F_ALL: u64 = 0xf;

/// Where a transfer reads or writes: the file's own offset, or an explicit
/// one that the caller keeps (and that the file's offset ignores).
#[derive(Clone, Copy)]
enum Pos {
    FileOffset,
    At(u64),
    /// A pipe or stream: no position.
    Stream,
}

/// A file's offset cell, for files that have one.
fn offset_cell(file: &File) -> Option<&core::sync::atomic::AtomicU64> {
    match file {
        File::HostFile { offset, .. } => Some(offset),
        File::Tmpfs(t) => Some(&t.offset),
        _ => None,
    }
}

fn is_regular_source(file: &File) -> bool {
    match file {
        File::HostFile { .. } => true,
        File::Tmpfs(t) => t.flags.load(Ordering::Relaxed) & 3 != 1,
        _ => false,
    }
}

fn readable(file: &File) -> KResult<()> {
    match file {
        File::Tmpfs(t) if t.flags.load(Ordering::Relaxed) & 3 == 1 => Err(Errno::EBADF),
        File::Pipe(end) if end.write => Err(Errno::EBADF),
        File::Dir(_) => Err(Errno::EISDIR),
        _ => Ok(()),
    }
}

fn writable(file: &File) -> KResult<()> {
    match file {
        File::Tmpfs(t) if t.flags.load(Ordering::Relaxed) & 3 == 0 => Err(Errno::EBADF),
        File::Tmpfs(_) => Ok(()),
        File::Pipe(end) if !end.write => Err(Errno::EBADF),
        File::HostFile { .. } | File::Dir(_) => Err(Errno::EBADF),
        File::Pipe(_) | File::HostStream { .. } | File::Socket(_) | File::Dev(_) => Ok(()),
        _ => Err(Errno::EINVAL),
    }
}

fn nonblocking_pipe(end: &PipeEnd, flags: u64) -> bool {
    flags & SPLICE_F_NONBLOCK != 0 || super::io::pipe_nonblock(end)
}

/// What the destination can take now: `Ok(n)` bytes (n > 0), or the error
/// (EAGAIN, EPIPE, or a block) the call ends with. Only a call that has
/// moved nothing yet (`first`) blocks or raises SIGPIPE; a later step just
/// ends the call with what it moved.
fn room<P: Platform>(k: &mut Kernel<'_, P>, out: &File, flags: u64, first: bool) -> KResult<usize> {
    match out {
        File::Pipe(end) => {
            let (queued, readers) = end.pipe.status(true);
            if readers == 0 && !first {
                return Err(Errno::EPIPE);
            }
            if readers == 0 {
                return Err(super::io::raise_sigpipe(k));
            }
            match PIPE_CAPACITY - queued {
                0 if !first || nonblocking_pipe(end, flags) => Err(Errno::EAGAIN),
                0 => Err(k.block(WaitKey::Pipe(end.pipe.id), None)),
                n => Ok(n),
            }
        }
        File::Socket(s) => {
            let (_, writable, gone) = s.readiness();
            if gone {
                return Err(Errno::EPIPE);
            }
            if !writable {
                return if !first || s.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0 {
                    Err(Errno::EAGAIN)
                } else {
                    Err(k.block(WaitKey::Pipe(s.tx.id), None))
                };
            }
            Ok(CHUNK)
        }
        _ => Ok(CHUNK),
    }
}

/// Read up to `max` bytes of `file` at `pos`. An empty result is the end of
/// the data; an empty pipe blocks (or EAGAIN, or ends a call that already
/// moved something: not `first`).
fn read_chunk<P: Platform>(
    k: &mut Kernel<'_, P>,
    file: &File,
    pos: Pos,
    max: usize,
    (flags, first): (u64, bool),
) -> KResult<Vec<u8>> {
    let at = |pos: Pos| match pos {
        Pos::At(o) => o,
        _ => offset_cell(file).map_or(0, |c| c.load(Ordering::Relaxed)),
    };
    match file {
        File::HostFile { handle, .. } => {
            let mut buf = vec![0u8; max];
            let n = k.plat.host().pread(*handle, &mut buf, at(pos))?;
            buf.truncate(n);
            Ok(buf)
        }
        File::Tmpfs(t) => {
            let mut buf = vec![0u8; max];
            let n = t.fs.read(t.ino, &mut buf, at(pos))?;
            buf.truncate(n);
            Ok(buf)
        }
        File::Pipe(end) => {
            let mut buf = Vec::new();
            match end.pipe.read(max, &mut buf) {
                PipeIo::Done(_) => {
                    k.wake(WaitKey::Pipe(end.pipe.id), usize::MAX);
                    Ok(buf)
                }
                PipeIo::Closed => Ok(Vec::new()),
                PipeIo::WouldBlock if !first || nonblocking_pipe(end, flags) => Err(Errno::EAGAIN),
                PipeIo::WouldBlock => Err(k.block(WaitKey::Pipe(end.pipe.id), None)),
            }
        }
        File::Dev(DevKind::Null) => Ok(Vec::new()),
        File::Dev(kind) => {
            let mut buf = vec![0u8; max];
            if *kind == DevKind::Random {
                k.plat.random(&mut buf);
            }
            Ok(buf)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Write all of `data` to `out` at `pos` (the caller sized it to the room
/// there). Returns the bytes written, short only on a host stream error.
fn write_chunk<P: Platform>(
    k: &mut Kernel<'_, P>,
    out: &File,
    pos: Pos,
    data: &[u8],
) -> KResult<usize> {
    match out {
        File::Tmpfs(t) => {
            let off = match pos {
                Pos::At(o) => o,
                _ if t.flags.load(Ordering::Relaxed) & super::open::O_APPEND_BIT != 0 => {
                    t.fs.stat(t.ino)?.st_size as u64
                }
                _ => t.offset.load(Ordering::Relaxed),
            };
            let stamp = super::open::now(k);
            let n = t.fs.write(t.ino, data, off, stamp)?;
            if !matches!(pos, Pos::At(_)) {
                t.offset.store(off + n as u64, Ordering::Relaxed);
            }
            Ok(n)
        }
        File::Pipe(end) => match end.pipe.write(data) {
            PipeIo::Done(n) => {
                k.wake(WaitKey::Pipe(end.pipe.id), usize::MAX);
                Ok(n)
            }
            _ => Err(Errno::EPIPE),
        },
        File::Socket(s) => {
            let n = super::socket::send_data(k, s, data, Vec::new(), 0)?;
            Ok(n as usize)
        }
        File::HostStream { handle } => {
            let mut done = 0;
            while done < data.len() {
                match k.plat.host().write(*handle, &data[done..]) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if done == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            Ok(done)
        }
        File::Dev(DevKind::Full) => Err(Errno::ENOSPC),
        File::Dev(_) => Ok(data.len()),
        _ => Err(Errno::EINVAL),
    }
}

/// Move up to `len` bytes from `inp` at `ipos` to `out` at `opos`. Returns
/// the bytes moved and the final input and output positions. Blocking ends
/// the call only when nothing has moved.
fn transfer<P: Platform>(
    k: &mut Kernel<'_, P>,
    (inp, mut ipos): (&File, Pos),
    (out, mut opos): (&File, Pos),
    len: u64,
    flags: u64,
) -> KResult<(u64, Pos, Pos)> {
    let len = len.min(MAX_RW_COUNT);
    let mut done = 0u64;
    while done < len {
        let first = done == 0;
        let want = match room(k, out, flags, first) {
            Ok(n) => n.min((len - done) as usize),
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let data = match read_chunk(k, inp, ipos, want, (flags, first)) {
            Ok(d) => d,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        if data.is_empty() {
            break;
        }
        let n = match write_chunk(k, out, opos, &data) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        if let Pos::At(o) = &mut ipos {
            *o += n as u64;
        } else if let Some(c) = offset_cell(inp) {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Pos::At(o) = &mut opos {
            *o += n as u64;
        }
        done += n as u64;
        // A pipe source hands over what it holds; don't wait for more.
        if n < data.len() || (matches!(inp, File::Pipe(_)) && data.len() < want) {
            break;
        }
    }
    Ok((done, ipos, opos))
}

/// Read an optional `loff_t *`; a negative offset is EINVAL.
fn read_off<P: Platform>(k: &mut Kernel<'_, P>, ptr: u64) -> KResult<Option<u64>> {
    if ptr == 0 {
        return Ok(None);
    }
    let v = k.read_u64(ptr)?;
    if (v as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(v))
}

fn write_off<P: Platform>(k: &mut Kernel<'_, P>, ptr: u64, pos: Pos) -> KResult<()> {
    match pos {
        Pos::At(o) if ptr != 0 => k.copy_out(ptr, &o.to_le_bytes()),
        _ => Ok(()),
    }
}

/// sendfile(2): from a regular file to anything writable.
pub fn sys_sendfile<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let out = k.group().fds.get(arg_fd(a[0]))?;
    let inp = k.group().fds.get(arg_fd(a[1]))?;
    readable(&inp)?;
    writable(&out)?;
    if !is_regular_source(&inp) {
        return Err(Errno::EINVAL);
    }
    if let File::Tmpfs(t) = &*out {
        if t.flags.load(Ordering::Relaxed) & super::open::O_APPEND_BIT != 0 {
            return Err(Errno::EINVAL);
        }
    }
    let ipos = match read_off(k, a[2])? {
        Some(o) => Pos::At(o),
        None => Pos::FileOffset,
    };
    let opos = if offset_cell(&out).is_some() {
        Pos::FileOffset
    } else {
        Pos::Stream
    };
    let (n, ipos, _) = transfer(k, (&inp, ipos), (&out, opos), a[3], 0)?;
    write_off(k, a[2], ipos)?;
    Ok(n)
}

/// splice(2): one side must be a pipe; the other side's offset pointer
/// must be NULL for a pipe or stream.
pub fn sys_splice<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (off_in, off_out, len, flags) = (a[1], a[3], a[4], a[5]);
    let inp = k.group().fds.get(arg_fd(a[0]))?;
    let out = k.group().fds.get(arg_fd(a[2]))?;
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    readable(&inp)?;
    writable(&out)?;
    let (in_pipe, out_pipe) = (
        matches!(&*inp, File::Pipe(_)),
        matches!(&*out, File::Pipe(_)),
    );
    if !in_pipe && !out_pipe {
        return Err(Errno::EINVAL);
    }
    if let (File::Pipe(i), File::Pipe(o)) = (&*inp, &*out) {
        if alloc::sync::Arc::ptr_eq(&i.pipe, &o.pipe) {
            return Err(Errno::EINVAL);
        }
    }
    let pos_of = |k: &mut Kernel<'_, P>, file: &File, ptr: u64, pipe: bool| -> KResult<Pos> {
        if pipe || offset_cell(file).is_none() {
            return if ptr != 0 {
                Err(Errno::ESPIPE)
            } else {
                Ok(Pos::Stream)
            };
        }
        Ok(match read_off(k, ptr)? {
            Some(o) => Pos::At(o),
            None => Pos::FileOffset,
        })
    };
    let ipos = pos_of(k, &inp, off_in, in_pipe)?;
    let opos = pos_of(k, &out, off_out, out_pipe)?;
    if len == 0 {
        return Ok(0);
    }
    let (n, ipos, opos) = transfer(k, (&inp, ipos), (&out, opos), len, flags)?;
    write_off(k, off_in, ipos)?;
    write_off(k, off_out, opos)?;
    Ok(n)
}

/// tee(2): copy from one pipe to another without consuming the source.
pub fn sys_tee<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let inp = k.group().fds.get(arg_fd(a[0]))?;
    let out = k.group().fds.get(arg_fd(a[1]))?;
    let (len, flags) = (a[2].min(MAX_RW_COUNT), a[3]);
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let (File::Pipe(i), File::Pipe(o)) = (&*inp, &*out) else {
        return Err(Errno::EINVAL);
    };
    if i.write || !o.write || alloc::sync::Arc::ptr_eq(&i.pipe, &o.pipe) {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let (queued, writers) = i.pipe.status(false);
    if queued == 0 {
        return if writers == 0 {
            Ok(0)
        } else if nonblocking_pipe(i, flags) {
            Err(Errno::EAGAIN)
        } else {
            Err(k.block(WaitKey::Pipe(i.pipe.id), None))
        };
    }
    let room = room(k, &out, flags, true)?;
    let data = i.pipe.peek(room.min(len as usize));
    write_chunk(k, &out, Pos::Stream, &data).map(|n| n as u64)
}

/// copy_file_range(2): between regular files.
pub fn sys_copy_file_range<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (off_in, off_out, len, flags) = (a[1], a[3], a[4], a[5]);
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let inp = k.group().fds.get(arg_fd(a[0]))?;
    let out = k.group().fds.get(arg_fd(a[2]))?;
    readable(&inp)?;
    if matches!(&*out, File::HostFile { .. }) {
        return Err(Errno::EBADF);
    }
    writable(&out)?;
    if !is_regular_source(&inp) || !matches!(&*out, File::Tmpfs(_)) {
        return Err(Errno::EINVAL);
    }
    if let File::Tmpfs(t) = &*out {
        if t.flags.load(Ordering::Relaxed) & super::open::O_APPEND_BIT != 0 {
            return Err(Errno::EBADF);
        }
    }
    let ipos = match read_off(k, off_in)? {
        Some(o) => Pos::At(o),
        None => Pos::FileOffset,
    };
    let opos = match read_off(k, off_out)? {
        Some(o) => Pos::At(o),
        None => Pos::FileOffset,
    };
    // The same file with overlapping ranges is EINVAL on Linux.
    if let (File::Tmpfs(i), File::Tmpfs(o)) = (&*inp, &*out) {
        if alloc::sync::Arc::ptr_eq(&i.fs, &o.fs) && i.ino == o.ino {
            let at = |p: Pos, t: &crate::fs::TmpFile| match p {
                Pos::At(v) => v,
                _ => t.offset.load(Ordering::Relaxed),
            };
            let (s, d) = (at(ipos, i), at(opos, o));
            if s < d.saturating_add(len) && d < s.saturating_add(len) {
                return Err(Errno::EINVAL);
            }
        }
    }
    let (n, ipos, opos) = transfer(k, (&inp, ipos), (&out, opos), len, 0)?;
    write_off(k, off_in, ipos)?;
    write_off(k, off_out, opos)?;
    Ok(n)
}
