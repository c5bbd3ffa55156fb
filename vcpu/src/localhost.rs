//! A minimal [`HostBackend`] over host files, until `devices` provides the
//! real host services (the gofer role). Paths resolve beneath a root
//! directory with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use memory::vm_memory::{ReadVolatile, VolatileSlice, WriteVolatile};

use crate::hostcall::{Errno, HostBackend};

const EBADF: Errno = 9;
const EMFILE: Errno = 24;
const ENOTTY: Errno = 25;
const MAX_HANDLES: usize = 4096;

/// Where a standard stream goes.
#[derive(Debug, Clone)]
pub enum Stream {
    /// A host file (a dup of the VMM's own stdio, a pipe, a log file).
    File(Arc<File>),
    /// Captured in memory (tests).
    Capture(Arc<Mutex<Vec<u8>>>),
}

#[derive(Debug)]
enum Handle {
    Stream(Stream),
    File(File),
}

/// Host files beneath `root`, plus the three standard streams.
#[derive(Debug)]
pub struct LocalHost {
    root: OwnedFd,
    handles: Vec<Option<Handle>>,
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().unwrap_or(5)
}

fn vol_errno(e: &memory::vm_memory::VolatileMemoryError) -> Errno {
    match e {
        memory::vm_memory::VolatileMemoryError::IOError(io) => errno_of(io),
        _ => 14,
    }
}

impl LocalHost {
    /// Backend with `root` as the container root and the given streams.
    pub fn new(
        root: &std::path::Path,
        stdin: Stream,
        stdout: Stream,
        stderr: Stream,
    ) -> std::io::Result<LocalHost> {
        let dir = File::open(root)?;
        Ok(LocalHost {
            root: OwnedFd::from(dir),
            handles: vec![
                Some(Handle::Stream(stdin)),
                Some(Handle::Stream(stdout)),
                Some(Handle::Stream(stderr)),
            ],
        })
    }

    /// Backend on the host root with the VMM's own stdio.
    pub fn with_process_stdio() -> std::io::Result<LocalHost> {
        let dup = |fd: i32| -> std::io::Result<Stream> {
            // SAFETY: F_DUPFD_CLOEXEC on a standard fd; the result is a new fd we own.
            let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `n` is a fresh fd owned by nobody else.
            Ok(Stream::File(Arc::new(unsafe { File::from_raw_fd(n) })))
        };
        LocalHost::new(std::path::Path::new("/"), dup(0)?, dup(1)?, dup(2)?)
    }

    fn get(&mut self, h: u32) -> Result<&mut Handle, Errno> {
        self.handles
            .get_mut(h as usize)
            .and_then(Option::as_mut)
            .ok_or(EBADF)
    }

    fn raw_fd(&mut self, h: u32) -> Result<i32, Errno> {
        match self.get(h)? {
            Handle::File(f) => Ok(f.as_raw_fd()),
            Handle::Stream(Stream::File(f)) => Ok(f.as_raw_fd()),
            Handle::Stream(Stream::Capture(_)) => Err(ENOTTY),
        }
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

impl HostBackend for LocalHost {
    fn open(&mut self, path: &[u8]) -> Result<u32, Errno> {
        if path.contains(&0) {
            return Err(22);
        }
        let mut c = path.to_vec();
        c.push(0);
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: openat2 reads the NUL-terminated path and `how` (size passed),
        // both alive for the call; it returns a new fd or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.root.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(errno_of(&std::io::Error::last_os_error()));
        }
        let fd = i32::try_from(fd).map_err(|_| EBADF)?;
        // SAFETY: a fresh fd from openat2, owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        let slot = match self.handles.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.handles.len() < MAX_HANDLES => {
                self.handles.push(None);
                self.handles.len() - 1
            }
            None => return Err(EMFILE),
        };
        self.handles[slot] = Some(Handle::File(file));
        u32::try_from(slot).map_err(|_| EMFILE)
    }

    fn read(&mut self, h: u32, dst: &VolatileSlice<'_, ()>) -> Result<usize, Errno> {
        let mut dst = *dst;
        match self.get(h)? {
            Handle::File(f) => f.read_volatile(&mut dst).map_err(|e| vol_errno(&e)),
            Handle::Stream(Stream::File(f)) => {
                (&**f).read_volatile(&mut dst).map_err(|e| vol_errno(&e))
            }
            Handle::Stream(Stream::Capture(_)) => Ok(0),
        }
    }

    fn pread(&mut self, h: u32, dst: &VolatileSlice<'_, ()>, offset: u64) -> Result<usize, Errno> {
        let fd = self.raw_fd(h)?;
        let off = i64::try_from(offset).map_err(|_| 22)?;
        let guard = dst.ptr_guard_mut();
        // SAFETY: `dst` is a bounds-checked view of guest memory of `dst.len()`
        // bytes, valid while `guard` lives; pread writes at most that many bytes.
        let n = unsafe { libc::pread(fd, guard.as_ptr().cast(), dst.len(), off) };
        usize::try_from(n).map_err(|_| errno_of(&std::io::Error::last_os_error()))
    }

    fn write(&mut self, h: u32, src: &VolatileSlice<'_, ()>) -> Result<usize, Errno> {
        match self.get(h)? {
            Handle::File(f) => f.write_volatile(src).map_err(|e| vol_errno(&e)),
            Handle::Stream(Stream::File(f)) => {
                (&**f).write_volatile(src).map_err(|e| vol_errno(&e))
            }
            Handle::Stream(Stream::Capture(buf)) => {
                let mut tmp = vec![0u8; src.len()];
                src.copy_to(&mut tmp[..]);
                buf.lock().map_err(|_| 5)?.extend_from_slice(&tmp);
                Ok(tmp.len())
            }
        }
    }

    fn fstat(&mut self, h: u32) -> Result<[u8; 144], Errno> {
        let fd = self.raw_fd(h)?;
        // SAFETY: an all-zero `struct stat` is valid; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer for the call.
        if unsafe { libc::fstat(fd, &mut st) } < 0 {
            return Err(errno_of(&std::io::Error::last_os_error()));
        }
        let mut b = [0u8; 144];
        let mut put = |o: usize, v: &[u8]| b[o..o + v.len()].copy_from_slice(v);
        put(0, &st.st_dev.to_le_bytes());
        put(8, &st.st_ino.to_le_bytes());
        put(16, &st.st_nlink.to_le_bytes());
        put(24, &st.st_mode.to_le_bytes());
        put(28, &st.st_uid.to_le_bytes());
        put(32, &st.st_gid.to_le_bytes());
        put(40, &st.st_rdev.to_le_bytes());
        put(48, &st.st_size.to_le_bytes());
        put(56, &st.st_blksize.to_le_bytes());
        put(64, &st.st_blocks.to_le_bytes());
        put(72, &st.st_atime.to_le_bytes());
        put(80, &st.st_atime_nsec.to_le_bytes());
        put(88, &st.st_mtime.to_le_bytes());
        put(96, &st.st_mtime_nsec.to_le_bytes());
        put(104, &st.st_ctime.to_le_bytes());
        put(112, &st.st_ctime_nsec.to_le_bytes());
        Ok(b)
    }

    fn tcgets(&mut self, h: u32) -> Result<[u8; 36], Errno> {
        let fd = self.raw_fd(h)?;
        let mut raw = [0u8; 64];
        // SAFETY: TCGETS writes the kernel's 36-byte `struct termios` into `raw` (64 bytes).
        if unsafe { libc::ioctl(fd, libc::TCGETS, raw.as_mut_ptr()) } < 0 {
            return Err(errno_of(&std::io::Error::last_os_error()));
        }
        let mut t = [0u8; 36];
        t.copy_from_slice(&raw[..36]);
        Ok(t)
    }

    fn close(&mut self, h: u32) -> Result<(), Errno> {
        let slot = self.handles.get_mut(h as usize).ok_or(EBADF)?;
        if slot.take().is_none() {
            return Err(EBADF);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_is_confined_beneath_the_root() {
        let dir = std::env::temp_dir().join(format!("rf-localhost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        std::fs::write(dir.join("f"), b"data").expect("write");
        let cap = Stream::Capture(Arc::default());
        let mut h = LocalHost::new(&dir, cap.clone(), cap.clone(), cap).expect("backend");
        assert!(h.open(b"/f").is_ok());
        // `..` cannot climb out of the root: /etc/passwd resolves beneath it.
        assert_eq!(h.open(b"/../../etc/passwd"), Err(2));
        assert_eq!(h.open(b"/f\0x"), Err(22));
        assert_eq!(h.close(99), Err(EBADF));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
