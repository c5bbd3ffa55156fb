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
}

/// How the container's init ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
    /// The program could not be started.
    ExecFailed { path: Vec<u8>, errno: Errno, reason: &'static str },
    /// The platform failed underneath the sentry.
    PlatformFailed(alloc::string::String),
}

impl ExitStatus {
    /// The status a runtime reports: the code, or 128+N for signal N.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(c) => *c & 0xff,
            ExitStatus::Signaled(s) => 128 + *s,
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
        if !r.buf.is_empty() {
            return Err(DecodeError);
        }
        Ok(BootParams { args, env, cwd, hostname, uid, gid, rlimits, log_level })
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
}
