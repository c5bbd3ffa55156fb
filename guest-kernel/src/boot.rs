//! What the host tells the sentry at boot, and what the sentry reports back.
//!
//! `BootParams` crosses from the VMM into guest memory on KVM, so it has a
//! simple, versioned byte encoding whose decoder trusts nothing.

use alloc::vec::Vec;

use crate::abi::Errno;

/// The container's first process, as the spec describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootParams {
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub hostname: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    /// `(resource, soft, hard)` with Linux resource numbers.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Log level: 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace.
    pub log_level: u32,
    /// `root.readonly`: writes to the root overlay fail with `EROFS`.
    pub root_readonly: bool,
    /// Destinations of the spec's tmpfs mounts.
    pub tmpfs_mounts: Vec<Vec<u8>>,
    /// The spec's bind mounts the host serves: (destination, writable).
    pub bind_mounts: Vec<(Vec<u8>, bool)>,
}

/// A process to start in the running container (`exec`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The host's name for the request; the exit is reported with it.
    pub id: u32,
    pub args: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    /// Host handles of its stdin, stdout and stderr.
    pub stdio: [u32; 3],
    /// The pod container it belongs to: 0 for the sandbox's own, else the
    /// host's number for another container's root (its lower layer, under
    /// an overlay of its own). Encoded last, and only when not 0.
    pub root: u32,
}

impl ExecRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&EXEC_MAGIC.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        for list in [&self.args, &self.env] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for s in list {
                put_bytes(&mut out, s);
            }
        }
        put_bytes(&mut out, &self.cwd);
        for v in [
            self.uid,
            self.gid,
            self.stdio[0],
            self.stdio[1],
            self.stdio[2],
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if self.root != 0 {
            out.extend_from_slice(&self.root.to_le_bytes());
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf };
        if r.u32()? != EXEC_MAGIC {
            return Err(DecodeError);
        }
        let id = r.u32()?;
        let args = r.list()?;
        let env = r.list()?;
        let cwd = r.bytes()?;
        let (uid, gid) = (r.u32()?, r.u32()?);
        let stdio = [r.u32()?, r.u32()?, r.u32()?];
        let root = if r.buf.is_empty() { 0 } else { r.u32()? };
        if !r.buf.is_empty() || args.is_empty() {
            return Err(DecodeError);
        }
        Ok(ExecRequest {
            id,
            args,
            env,
            cwd,
            uid,
            gid,
            stdio,
            root,
        })
    }
}

const EXEC_MAGIC: u32 = 0x5246_4552; // "RFER"

/// How the container's init ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
    /// The program could not be started.
    ExecFailed {
        path: Vec<u8>,
        errno: Errno,
        reason: &'static str,
    },
    /// The platform failed underneath the sentry.
    PlatformFailed(alloc::string::String),
}

impl ExitStatus {
    /// The status a runtime reports: the code, or 128+N for signal N.
    /// Total on any value (a decoded status comes from the guest).
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(c) => *c & 0xff,
            ExitStatus::Signaled(s) => 128 + (*s & 0x7f),
            ExitStatus::ExecFailed { errno, .. } if *errno == Errno::ENOENT => 127,
            ExitStatus::ExecFailed { .. } => 126,
            ExitStatus::PlatformFailed(_) => 255,
        }
    }
}

const MAGIC: u32 = 0x5246_4250; // "RFBP"
const VERSION: u32 = 1;
/// Bound on one encoded string and on a list, so a decoder never allocates
/// without limit.
const MAX_ITEM: usize = 1 << 20;
const MAX_LIST: usize = 1 << 16;

/// A malformed boot-parameter blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError;

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let (h, t) = self.buf.split_first_chunk::<4>().ok_or(DecodeError)?;
        self.buf = t;
        Ok(u32::from_le_bytes(*h))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let (h, t) = self.buf.split_first_chunk::<8>().ok_or(DecodeError)?;
        self.buf = t;
        Ok(u64::from_le_bytes(*h))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32()? as usize;
        if n > MAX_ITEM || n > self.buf.len() {
            return Err(DecodeError);
        }
        let (h, t) = self.buf.split_at(n);
        self.buf = t;
        Ok(h.to_vec())
    }
    fn list(&mut self) -> Result<Vec<Vec<u8>>, DecodeError> {
        let n = self.u32()? as usize;
        if n > MAX_LIST {
            return Err(DecodeError);
        }
        (0..n).map(|_| self.bytes()).collect()
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

impl BootParams {
    /// The byte encoding the VMM writes into guest memory.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for list in [&self.args, &self.env] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for s in list {
                put_bytes(&mut out, s);
            }
        }
        put_bytes(&mut out, &self.cwd);
        put_bytes(&mut out, &self.hostname);
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&(self.rlimits.len() as u32).to_le_bytes());
        for (r, s, h) in &self.rlimits {
            out.extend_from_slice(&r.to_le_bytes());
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&h.to_le_bytes());
        }
        out.extend_from_slice(&self.log_level.to_le_bytes());
        out.extend_from_slice(&u32::from(self.root_readonly).to_le_bytes());
        out.extend_from_slice(&(self.tmpfs_mounts.len() as u32).to_le_bytes());
        for m in &self.tmpfs_mounts {
            put_bytes(&mut out, m);
        }
        out.extend_from_slice(&(self.bind_mounts.len() as u32).to_le_bytes());
        for (dest, writable) in &self.bind_mounts {
            put_bytes(&mut out, dest);
            out.extend_from_slice(&u32::from(*writable).to_le_bytes());
        }
        out
    }

    /// Decode what [`encode`](Self::encode) wrote. Any other input is an error.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf };
        if r.u32()? != MAGIC || r.u32()? != VERSION {
            return Err(DecodeError);
        }
        let args = r.list()?;
        let env = r.list()?;
        let cwd = r.bytes()?;
        let hostname = r.bytes()?;
        let uid = r.u32()?;
        let gid = r.u32()?;
        let n = r.u32()? as usize;
        if n > MAX_LIST {
            return Err(DecodeError);
        }
        let mut rlimits = Vec::new();
        for _ in 0..n {
            rlimits.push((r.u32()?, r.u64()?, r.u64()?));
        }
        let log_level = r.u32()?;
        let root_readonly = match r.u32()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError),
        };
        let tmpfs_mounts = r.list()?;
        let n = r.u32()? as usize;
        if n > MAX_LIST {
            return Err(DecodeError);
        }
        let mut bind_mounts = Vec::new();
        for _ in 0..n {
            let dest = r.bytes()?;
            let writable = match r.u32()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError),
            };
            bind_mounts.push((dest, writable));
        }
        if !r.buf.is_empty() {
            return Err(DecodeError);
        }
        Ok(BootParams {
            args,
            env,
            cwd,
            hostname,
            uid,
            gid,
            rlimits,
            log_level,
            root_readonly,
            tmpfs_mounts,
            bind_mounts,
        })
    }
}

/// "RFXS": an encoded [`ExitStatus`].
const EXIT_MAGIC: u32 = 0x5246_5853;
const TAG_EXITED: u32 = 1;
const TAG_SIGNALED: u32 = 2;
const TAG_EXEC_FAILED: u32 = 3;
const TAG_PLATFORM_FAILED: u32 = 4;
/// Bound on an encoded exit reason or message, so the report stays small.
const MAX_EXIT_TEXT: usize = 4096;
/// Bound on the program path in an exec failure.
const MAX_EXIT_PATH: usize = 4096;

/// The `reason`s the loader gives. Decoding maps a received reason back to
/// one of these, so `ExecFailed` round-trips without allocating; an
/// unknown reason is kept (leaked once: it is bounded and there is one
/// exit per sandbox).
static KNOWN_REASONS: &[&str] = &[
    "",
    "argument list too long",
    "cannot open",
    "cannot stat",
    "dynamically linked programs are not supported yet",
    "empty program name",
    "executable file not found in $PATH",
    "executable too large",
    "interpreter scripts need the filesystem layer (not yet supported)",
    "not a regular file",
    "not a valid x86-64 ELF executable",
    "permission denied (no execute bit)",
    "read error",
    "segment overflows",
    "segments reach above the user address range",
];

fn truncated(b: &[u8], max: usize) -> &[u8] {
    &b[..b.len().min(max)]
}

/// `s` cut to at most `max` bytes at a character boundary, so a decoded
/// text encodes and decodes back to itself.
fn truncated_str(s: &str, max: usize) -> &str {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

impl ExitStatus {
    /// The byte encoding the KVM sentry hands to the VMM at exit. Texts
    /// longer than the decoder accepts are truncated.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&EXIT_MAGIC.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        match self {
            ExitStatus::Exited(c) => {
                out.extend_from_slice(&TAG_EXITED.to_le_bytes());
                out.extend_from_slice(&c.to_le_bytes());
            }
            ExitStatus::Signaled(s) => {
                out.extend_from_slice(&TAG_SIGNALED.to_le_bytes());
                out.extend_from_slice(&s.to_le_bytes());
            }
            ExitStatus::ExecFailed {
                path,
                errno,
                reason,
            } => {
                out.extend_from_slice(&TAG_EXEC_FAILED.to_le_bytes());
                put_bytes(&mut out, truncated(path, MAX_EXIT_PATH));
                out.extend_from_slice(&errno.0.to_le_bytes());
                put_bytes(&mut out, truncated_str(reason, MAX_EXIT_TEXT).as_bytes());
            }
            ExitStatus::PlatformFailed(msg) => {
                out.extend_from_slice(&TAG_PLATFORM_FAILED.to_le_bytes());
                put_bytes(&mut out, truncated_str(msg, MAX_EXIT_TEXT).as_bytes());
            }
        }
        out
    }

    /// Decode what [`encode`](Self::encode) wrote. Any other input is an
    /// error; texts are bounded and invalid UTF-8 is replaced.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf };
        if r.u32()? != EXIT_MAGIC || r.u32()? != VERSION {
            return Err(DecodeError);
        }
        let text = |r: &mut Reader<'_>, max: usize| -> Result<Vec<u8>, DecodeError> {
            let b = r.bytes()?;
            if b.len() > max {
                return Err(DecodeError);
            }
            Ok(b)
        };
        // Replacement characters can make the text longer than the
        // encoder carries: bound it the same way.
        let lossy = |b: &[u8]| {
            let s = alloc::string::String::from_utf8_lossy(b);
            alloc::string::String::from(truncated_str(&s, MAX_EXIT_TEXT))
        };
        let status = match r.u32()? {
            TAG_EXITED => ExitStatus::Exited(r.u32()? as i32),
            TAG_SIGNALED => ExitStatus::Signaled(r.u32()? as i32),
            TAG_EXEC_FAILED => {
                let path = text(&mut r, MAX_EXIT_PATH)?;
                let errno = Errno(r.u32()? as i32);
                let reason = lossy(&text(&mut r, MAX_EXIT_TEXT)?);
                let reason: &'static str = match KNOWN_REASONS.iter().find(|k| **k == reason) {
                    Some(k) => k,
                    None => alloc::boxed::Box::leak(reason.into_boxed_str()),
                };
                ExitStatus::ExecFailed {
                    path,
                    errno,
                    reason,
                }
            }
            TAG_PLATFORM_FAILED => {
                let msg = text(&mut r, MAX_EXIT_TEXT)?;
                ExitStatus::PlatformFailed(lossy(&msg))
            }
            _ => return Err(DecodeError),
        };
        if !r.buf.is_empty() {
            return Err(DecodeError);
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn round_trip_and_rejects_truncation() {
        let p = BootParams {
            args: vec![b"/bin/sh".to_vec(), b"-c".to_vec()],
            env: vec![b"A=B".to_vec()],
            cwd: b"/".to_vec(),
            hostname: b"h".to_vec(),
            uid: 1000,
            gid: 100,
            rlimits: vec![(7, 1024, 4096)],
            log_level: 4,
            root_readonly: true,
            tmpfs_mounts: vec![b"/run".to_vec()],
            bind_mounts: vec![(b"/data".to_vec(), true), (b"/etc/hosts".to_vec(), false)],
        };
        let enc = p.encode();
        assert_eq!(BootParams::decode(&enc), Ok(p));
        for n in 0..enc.len() {
            assert_eq!(BootParams::decode(&enc[..n]), Err(DecodeError));
        }
        let mut bad = enc.clone();
        bad[8] = 0xff; // absurd argc
        bad[9] = 0xff;
        assert_eq!(BootParams::decode(&bad), Err(DecodeError));
    }

    #[test]
    fn exec_request_carries_its_pod_root() {
        let mut r = ExecRequest {
            id: 7,
            args: vec![b"/bin/sh".to_vec()],
            stdio: [3, 4, 5],
            ..Default::default()
        };
        let own = r.encode();
        assert_eq!(ExecRequest::decode(&own), Ok(r.clone()));
        r.root = 3;
        let pod = r.encode();
        assert_eq!(pod.len(), own.len() + 4);
        assert_eq!(ExecRequest::decode(&pod), Ok(r));
        let mut long = pod.clone();
        long.push(0);
        assert_eq!(ExecRequest::decode(&long), Err(DecodeError));
    }

    #[test]
    fn exit_status_round_trips_and_rejects_garbage() {
        let cases = [
            ExitStatus::Exited(0),
            ExitStatus::Exited(-1),
            ExitStatus::Exited(300),
            ExitStatus::Signaled(11),
            ExitStatus::ExecFailed {
                path: b"/bin/nope".to_vec(),
                errno: Errno::ENOENT,
                reason: "",
            },
            ExitStatus::ExecFailed {
                path: b"/bin/x\xff".to_vec(),
                errno: Errno::ENOEXEC,
                reason: "not a valid x86-64 ELF executable",
            },
            ExitStatus::ExecFailed {
                path: Vec::new(),
                errno: Errno::EIO,
                reason: "a reason nobody knows",
            },
            ExitStatus::PlatformFailed("vCPU lost".into()),
        ];
        for st in cases {
            let enc = st.encode();
            assert_eq!(ExitStatus::decode(&enc), Ok(st.clone()));
            for n in 0..enc.len() {
                assert_eq!(ExitStatus::decode(&enc[..n]), Err(DecodeError));
            }
            let mut longer = enc.clone();
            longer.push(0);
            assert_eq!(ExitStatus::decode(&longer), Err(DecodeError));
        }
        // A known reason decodes to the loader's own string.
        let st = ExitStatus::ExecFailed {
            path: b"/p".to_vec(),
            errno: Errno::EACCES,
            reason: "cannot open",
        };
        match ExitStatus::decode(&st.encode()) {
            Ok(ExitStatus::ExecFailed { reason, .. }) => {
                assert!(core::ptr::eq(reason.as_ptr(), KNOWN_REASONS[2].as_ptr()))
            }
            other => panic!("{other:?}"),
        }
        // Unknown tag, bad magic, absurd lengths, invalid UTF-8 in a message.
        let mut bad = ExitStatus::Signaled(9).encode();
        bad[8] = 9;
        assert_eq!(ExitStatus::decode(&bad), Err(DecodeError));
        assert_eq!(
            ExitStatus::decode(&BootParams::default().encode()),
            Err(DecodeError)
        );
        let mut huge = ExitStatus::PlatformFailed("x".into()).encode();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(ExitStatus::decode(&huge), Err(DecodeError));
        let mut lossy = ExitStatus::PlatformFailed("ab".into()).encode();
        let n = lossy.len();
        lossy[n - 1] = 0xff;
        assert_eq!(
            ExitStatus::decode(&lossy),
            Ok(ExitStatus::PlatformFailed("a\u{fffd}".into()))
        );
        // Any signal number a guest may send gives a code, without overflow.
        assert_eq!(ExitStatus::Signaled(i32::MAX).code(), 255);
        assert_eq!(ExitStatus::Signaled(i32::MIN).code(), 128);
        // Invalid UTF-8 may triple a text's length: it is bounded again,
        // so the decoded status round-trips.
        let mut invalid = ExitStatus::PlatformFailed("x".into()).encode();
        invalid.truncate(12);
        invalid.extend_from_slice(&1400u32.to_le_bytes());
        invalid.extend_from_slice(&[0xff; 1400]);
        let st = ExitStatus::decode(&invalid).unwrap();
        assert!(matches!(&st, ExitStatus::PlatformFailed(m) if m.len() <= MAX_EXIT_TEXT));
        assert_eq!(ExitStatus::decode(&st.encode()), Ok(st));
        // Truncation never splits a character.
        let long = ExitStatus::PlatformFailed("\u{e9}".repeat(3000));
        assert!(
            matches!(ExitStatus::decode(&long.encode()), Ok(ExitStatus::PlatformFailed(m)) if m == "\u{e9}".repeat(2048))
        );
        // Long texts are truncated by the encoder, never rejected.
        let long = ExitStatus::PlatformFailed("y".repeat(10_000));
        assert!(
            matches!(ExitStatus::decode(&long.encode()), Ok(ExitStatus::PlatformFailed(m)) if m.len() == MAX_EXIT_TEXT)
        );
    }
}
