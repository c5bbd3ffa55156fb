//! Linux structures and constants that cross the user boundary.

/// `PROT_*` bits.
pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

/// `MAP_*` flags.
pub const MAP_SHARED: u32 = 0x01;
pub const MAP_PRIVATE: u32 = 0x02;
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
pub const MAP_TYPE: u32 = 0x0f;
pub const MAP_FIXED: u32 = 0x10;
pub const MAP_ANONYMOUS: u32 = 0x20;
pub const MAP_GROWSDOWN: u32 = 0x100;
pub const MAP_DENYWRITE: u32 = 0x800;
pub const MAP_EXECUTABLE: u32 = 0x1000;
pub const MAP_LOCKED: u32 = 0x2000;
pub const MAP_NORESERVE: u32 = 0x4000;
pub const MAP_POPULATE: u32 = 0x8000;
pub const MAP_NONBLOCK: u32 = 0x10000;
pub const MAP_STACK: u32 = 0x20000;
pub const MAP_HUGETLB: u32 = 0x40000;
pub const MAP_FIXED_NOREPLACE: u32 = 0x100000;

/// Auxiliary vector keys.
pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// Clock ids.
pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: u32 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: u32 = 3;
pub const CLOCK_MONOTONIC_RAW: u32 = 4;
pub const CLOCK_REALTIME_COARSE: u32 = 5;
pub const CLOCK_MONOTONIC_COARSE: u32 = 6;
pub const CLOCK_BOOTTIME: u32 = 7;

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

impl Timespec {
    pub fn from_ns(ns: u64) -> Self {
        Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as i64,
        }
    }

    /// Nanoseconds, or `None` when the value is not a valid timespec.
    pub fn to_ns(self) -> Option<u64> {
        if self.tv_sec < 0 || !(0..1_000_000_000).contains(&self.tv_nsec) {
            return None;
        }
        (self.tv_sec as u64)
            .checked_mul(1_000_000_000)?
            .checked_add(self.tv_nsec as u64)
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.tv_sec.to_le_bytes());
        b[8..].copy_from_slice(&self.tv_nsec.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; 16]) -> Self {
        let mut s = [0u8; 8];
        let mut n = [0u8; 8];
        s.copy_from_slice(&b[..8]);
        n.copy_from_slice(&b[8..]);
        Timespec {
            tv_sec: i64::from_le_bytes(s),
            tv_nsec: i64::from_le_bytes(n),
        }
    }
}

/// `struct stat` as x86-64 lays it out (144 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_nlink: u64,
    pub st_mode: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pub pad0: u32,
    pub st_rdev: u64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: i64,
    pub st_mtime: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime: i64,
    pub st_ctime_nsec: i64,
    pub reserved: [i64; 3],
}

impl Stat {
    /// The 144 bytes the application reads.
    pub fn to_bytes(&self) -> [u8; 144] {
        let mut out = [0u8; 144];
        let mut w = Writer::new(&mut out);
        w.u64(self.st_dev);
        w.u64(self.st_ino);
        w.u64(self.st_nlink);
        w.u32(self.st_mode);
        w.u32(self.st_uid);
        w.u32(self.st_gid);
        w.u32(0);
        w.u64(self.st_rdev);
        w.i64(self.st_size);
        w.i64(self.st_blksize);
        w.i64(self.st_blocks);
        for v in [
            self.st_atime,
            self.st_atime_nsec,
            self.st_mtime,
            self.st_mtime_nsec,
            self.st_ctime,
            self.st_ctime_nsec,
        ] {
            w.i64(v);
        }
        out
    }
}

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFLNK: u32 = 0o120000;

/// `struct new_utsname`: six fields of 65 bytes.
pub const UTS_FIELD_LEN: usize = 65;

/// Builds a `struct new_utsname` image.
pub fn utsname_bytes(fields: [&[u8]; 6]) -> [u8; UTS_FIELD_LEN * 6] {
    let mut out = [0u8; UTS_FIELD_LEN * 6];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(UTS_FIELD_LEN - 1);
        out[i * UTS_FIELD_LEN..i * UTS_FIELD_LEN + n].copy_from_slice(&f[..n]);
    }
    out
}

/// Little-endian writer into a fixed buffer; writes past the end are dropped
/// (callers size buffers exactly).
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        let end = (self.pos + b.len()).min(self.buf.len());
        let n = end - self.pos;
        self.buf[self.pos..end].copy_from_slice(&b[..n]);
        self.pos += b.len();
    }

    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Signals.
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGABRT: i32 = 6;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGSEGV: i32 = 11;
pub const SIGUSR2: i32 = 12;
pub const SIGPIPE: i32 = 13;
pub const SIGALRM: i32 = 14;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGTSTP: i32 = 20;
pub const SIGSYS: i32 = 31;
/// Highest signal number (real-time signals included).
pub const SIGRTMAX: i32 = 64;

/// `TCGETS` ioctl.
pub const TCGETS: u64 = 0x5401;
/// `TIOCGWINSZ` ioctl.
pub const TIOCGWINSZ: u64 = 0x5413;
/// Size of the kernel's `struct termios` (what `TCGETS` copies).
pub const TERMIOS_SIZE: usize = 36;

/// Resource limit numbers.
pub const RLIMIT_STACK: u32 = 3;
pub const RLIMIT_NOFILE: u32 = 7;
pub const RLIM_NLIMITS: u32 = 16;
pub const RLIM_INFINITY: u64 = u64::MAX;

/// `arch_prctl` codes.
pub const ARCH_SET_GS: u64 = 0x1001;
pub const ARCH_SET_FS: u64 = 0x1002;
pub const ARCH_GET_FS: u64 = 0x1003;
pub const ARCH_GET_GS: u64 = 0x1004;
pub const ARCH_GET_CPUID: u64 = 0x1011;
pub const ARCH_SET_CPUID: u64 = 0x1012;

/// Lowest address above the user half: no user mapping may reach it.
pub const TASK_SIZE: u64 = 0x0000_7fff_ffff_f000;
