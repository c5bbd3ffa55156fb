//! Resource limits (`process.rlimits`) with their Linux numbers.

use std::fmt;

use oci_spec::runtime::PosixRlimitType;
use serde::{Deserialize, Serialize};

/// One `setrlimit(2)` to apply to the container's first process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rlimit {
    /// Which limit.
    pub resource: RlimitResource,
    /// The soft (current) limit.
    pub soft: u64,
    /// The hard (maximum) limit; never below `soft` in a validated spec.
    pub hard: u64,
}

/// The `RLIMIT_*` resources of Linux, with the numbers `setrlimit(2)` uses on
/// x86-64 (and every other architecture but alpha, mips, sparc).
///
/// Serialized as the OCI name, e.g. `"RLIMIT_NOFILE"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RlimitResource {
    /// `RLIMIT_CPU` (0): CPU time in seconds.
    #[serde(rename = "RLIMIT_CPU")]
    Cpu = 0,
    /// `RLIMIT_FSIZE` (1): largest file size in bytes.
    #[serde(rename = "RLIMIT_FSIZE")]
    Fsize = 1,
    /// `RLIMIT_DATA` (2): data segment size in bytes.
    #[serde(rename = "RLIMIT_DATA")]
    Data = 2,
    /// `RLIMIT_STACK` (3): stack size in bytes.
    #[serde(rename = "RLIMIT_STACK")]
    Stack = 3,
    /// `RLIMIT_CORE` (4): core file size in bytes.
    #[serde(rename = "RLIMIT_CORE")]
    Core = 4,
    /// `RLIMIT_RSS` (5): resident set size (ignored by modern Linux).
    #[serde(rename = "RLIMIT_RSS")]
    Rss = 5,
    /// `RLIMIT_NPROC` (6): number of processes of the real uid.
    #[serde(rename = "RLIMIT_NPROC")]
    Nproc = 6,
    /// `RLIMIT_NOFILE` (7): one more than the largest file descriptor.
    #[serde(rename = "RLIMIT_NOFILE")]
    Nofile = 7,
    /// `RLIMIT_MEMLOCK` (8): locked memory in bytes.
    #[serde(rename = "RLIMIT_MEMLOCK")]
    Memlock = 8,
    /// `RLIMIT_AS` (9): address-space size in bytes.
    #[serde(rename = "RLIMIT_AS")]
    As = 9,
    /// `RLIMIT_LOCKS` (10): file locks and leases.
    #[serde(rename = "RLIMIT_LOCKS")]
    Locks = 10,
    /// `RLIMIT_SIGPENDING` (11): queued signals.
    #[serde(rename = "RLIMIT_SIGPENDING")]
    Sigpending = 11,
    /// `RLIMIT_MSGQUEUE` (12): bytes in POSIX message queues.
    #[serde(rename = "RLIMIT_MSGQUEUE")]
    Msgqueue = 12,
    /// `RLIMIT_NICE` (13): ceiling of the nice value, as `20 - nice`.
    #[serde(rename = "RLIMIT_NICE")]
    Nice = 13,
    /// `RLIMIT_RTPRIO` (14): ceiling of the real-time priority.
    #[serde(rename = "RLIMIT_RTPRIO")]
    Rtprio = 14,
    /// `RLIMIT_RTTIME` (15): real-time CPU time in microseconds.
    #[serde(rename = "RLIMIT_RTTIME")]
    Rttime = 15,
}

impl RlimitResource {
    /// Every resource, in Linux-number order (`ALL[n].linux_number() == n`).
    pub const ALL: [Self; 16] = [
        Self::Cpu,
        Self::Fsize,
        Self::Data,
        Self::Stack,
        Self::Core,
        Self::Rss,
        Self::Nproc,
        Self::Nofile,
        Self::Memlock,
        Self::As,
        Self::Locks,
        Self::Sigpending,
        Self::Msgqueue,
        Self::Nice,
        Self::Rtprio,
        Self::Rttime,
    ];

    /// The resource number that `getrlimit(2)`/`setrlimit(2)`/`prlimit64(2)` take.
    pub const fn linux_number(self) -> u32 {
        self as u32
    }

    /// The resource with Linux number `n`, if there is one.
    pub fn from_linux_number(n: u32) -> Option<Self> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The OCI / C name, e.g. `"RLIMIT_NOFILE"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cpu => "RLIMIT_CPU",
            Self::Fsize => "RLIMIT_FSIZE",
            Self::Data => "RLIMIT_DATA",
            Self::Stack => "RLIMIT_STACK",
            Self::Core => "RLIMIT_CORE",
            Self::Rss => "RLIMIT_RSS",
            Self::Nproc => "RLIMIT_NPROC",
            Self::Nofile => "RLIMIT_NOFILE",
            Self::Memlock => "RLIMIT_MEMLOCK",
            Self::As => "RLIMIT_AS",
            Self::Locks => "RLIMIT_LOCKS",
            Self::Sigpending => "RLIMIT_SIGPENDING",
            Self::Msgqueue => "RLIMIT_MSGQUEUE",
            Self::Nice => "RLIMIT_NICE",
            Self::Rtprio => "RLIMIT_RTPRIO",
            Self::Rttime => "RLIMIT_RTTIME",
        }
    }

    /// The resource called `name` (`"RLIMIT_NOFILE"`), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for RlimitResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<PosixRlimitType> for RlimitResource {
    fn from(typ: PosixRlimitType) -> Self {
        match typ {
            PosixRlimitType::RlimitCpu => Self::Cpu,
            PosixRlimitType::RlimitFsize => Self::Fsize,
            PosixRlimitType::RlimitData => Self::Data,
            PosixRlimitType::RlimitStack => Self::Stack,
            PosixRlimitType::RlimitCore => Self::Core,
            PosixRlimitType::RlimitRss => Self::Rss,
            PosixRlimitType::RlimitNproc => Self::Nproc,
            PosixRlimitType::RlimitNofile => Self::Nofile,
            PosixRlimitType::RlimitMemlock => Self::Memlock,
            PosixRlimitType::RlimitAs => Self::As,
            PosixRlimitType::RlimitLocks => Self::Locks,
            PosixRlimitType::RlimitSigpending => Self::Sigpending,
            PosixRlimitType::RlimitMsgqueue => Self::Msgqueue,
            PosixRlimitType::RlimitNice => Self::Nice,
            PosixRlimitType::RlimitRtprio => Self::Rtprio,
            PosixRlimitType::RlimitRttime => Self::Rttime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_libc() {
        let expected = [
            (RlimitResource::Cpu, libc::RLIMIT_CPU),
            (RlimitResource::Fsize, libc::RLIMIT_FSIZE),
            (RlimitResource::Data, libc::RLIMIT_DATA),
            (RlimitResource::Stack, libc::RLIMIT_STACK),
            (RlimitResource::Core, libc::RLIMIT_CORE),
            (RlimitResource::Rss, libc::RLIMIT_RSS),
            (RlimitResource::Nproc, libc::RLIMIT_NPROC),
            (RlimitResource::Nofile, libc::RLIMIT_NOFILE),
            (RlimitResource::Memlock, libc::RLIMIT_MEMLOCK),
            (RlimitResource::As, libc::RLIMIT_AS),
            (RlimitResource::Locks, libc::RLIMIT_LOCKS),
            (RlimitResource::Sigpending, libc::RLIMIT_SIGPENDING),
            (RlimitResource::Msgqueue, libc::RLIMIT_MSGQUEUE),
            (RlimitResource::Nice, libc::RLIMIT_NICE),
            (RlimitResource::Rtprio, libc::RLIMIT_RTPRIO),
            (RlimitResource::Rttime, libc::RLIMIT_RTTIME),
        ];
        for (r, n) in expected {
            assert_eq!(u64::from(r.linux_number()), u64::from(n), "{r}");
        }
    }

    #[test]
    fn all_is_in_number_order_and_names_round_trip() {
        for (i, r) in RlimitResource::ALL.into_iter().enumerate() {
            assert_eq!(r.linux_number() as usize, i);
            assert_eq!(RlimitResource::from_linux_number(r.linux_number()), Some(r));
            assert_eq!(RlimitResource::from_name(r.name()), Some(r));
            // serde name == OCI name == oci-spec's name.
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()));
            let oci: PosixRlimitType = serde_json::from_str(&json).unwrap();
            assert_eq!(RlimitResource::from(oci), r);
        }
        assert_eq!(RlimitResource::from_linux_number(16), None);
        assert_eq!(RlimitResource::from_linux_number(u32::MAX), None);
        assert_eq!(RlimitResource::from_name("RLIMIT_BOGUS"), None);
    }
}
