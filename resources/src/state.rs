//! Container state files, in the JSON shape of `runc state`.
//!
//! ```json
//! {"ociVersion":"1.0.2-dev","id":"c1","pid":1234,"status":"running",
//!  "bundle":"/b","rootfs":"/b/rootfs","created":"2024-05-01T10:00:00.5Z",
//!  "owner":"","annotations":{"k":"v"}}
//! ```
//! (`annotations` is left out when empty, as runc does.)

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Lifecycle status of a container (OCI runtime spec, "State").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The container is being created.
    Creating,
    /// Created; the user process has not been started.
    Created,
    /// The user process is running.
    Running,
    /// The user process is suspended (`pause`), as runc reports it.
    Paused,
    /// The user process has exited.
    Stopped,
}

impl Status {
    /// The lowercase name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one container, field for field what `runc state` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// Version of the runtime spec the bundle was written for.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// Host pid of the container's process (the sandbox), 0 when none.
    pub pid: i32,
    /// Lifecycle status.
    pub status: Status,
    /// Absolute path of the bundle directory.
    pub bundle: PathBuf,
    /// Absolute path of the root file system.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339 in UTC (see [`rfc3339_utc`]).
    pub created: String,
    /// User name of the owner (runc leaves it empty for root).
    #[serde(default)]
    pub owner: String,
    /// The spec's annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Why a state file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state could not be encoded (a path that is not UTF-8).
    #[error("cannot encode state for {}: {source}", .path.display())]
    Encode {
        /// The state file.
        path: PathBuf,
        /// The serializer error.
        source: serde_json::Error,
    },
    /// Writing, syncing or renaming failed.
    #[error("cannot write state file {}: {source}", .path.display())]
    Write {
        /// The state file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The file could not be read (see [`StateError::is_not_found`]).
    #[error("cannot read state file {}: {source}", .path.display())]
    Read {
        /// The state file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The file is not a valid state document.
    #[error("malformed state file {}: {source}", .path.display())]
    Malformed {
        /// The state file.
        path: PathBuf,
        /// The parser error, with line and column.
        source: serde_json::Error,
    },
}

impl StateError {
    /// True when reading failed because the file does not exist (the
    /// container is unknown).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Read { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Writes `state` to `path` atomically: into a fresh temporary file in the
/// same directory, `fsync`, then `rename` over `path` (and a best-effort
/// `fsync` of the directory). Readers see the old or the new file, never a
/// torn one. The file is created with mode 0600.
pub fn write_atomic(path: &Path, state: &ContainerState) -> Result<(), StateError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let data = serde_json::to_vec(state).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    let write_err = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| write_err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));

    let result = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: the temporary may not even exist.
        let _ = fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        log::debug!("fsync of {} failed: {e}", dir.display());
    }
    Ok(())
}

/// Reads a state file written by [`write_atomic`] (or by runc).
pub fn read(path: &Path) -> Result<ContainerState, StateError> {
    let bytes = fs::read(path).map_err(|source| StateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| StateError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

/// Formats `t` as RFC 3339 in UTC with Go's `RFC3339Nano` style (the form in
/// runc's `created`): nanoseconds with trailing zeros cut, e.g.
/// `2024-05-01T10:00:00.5Z`. Times before 1970 are clamped to the epoch.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let nanos = since.subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Howard Hinnant's `civil_from_days` for days since 1970-01-01 (unsigned,
/// so no overflow for any `SystemTime`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestDir;
    use std::time::Duration;

    fn sample() -> ContainerState {
        ContainerState {
            oci_version: "1.0.2-dev".into(),
            id: "c1".into(),
            pid: 4242,
            status: Status::Created,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: rfc3339_utc(UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000)),
            owner: String::new(),
            annotations: BTreeMap::from([("k".into(), "v".into())]),
        }
    }

    #[test]
    fn write_read_round_trip() {
        let dir = TestDir::new();
        let path = dir.path().join("state.json");
        let mut state = sample();
        write_atomic(&path, &state).unwrap();
        assert_eq!(read(&path).unwrap(), state);
        // Overwrite in place.
        state.status = Status::Running;
        state.annotations.clear();
        write_atomic(&path, &state).unwrap();
        assert_eq!(read(&path).unwrap(), state);
        // No temporary left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn json_field_names_match_runc() {
        let v = serde_json::to_value(sample()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        for k in [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
            "annotations",
        ] {
            assert!(keys.iter().any(|x| x == k), "missing {k}");
        }
        assert_eq!(keys.len(), 9);
        assert_eq!(v["status"], "created");
        assert_eq!(v["created"], "2023-11-14T22:13:20.5Z");
        // Empty annotations are omitted, and may be absent when reading.
        let mut s = sample();
        s.annotations.clear();
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("annotations").is_none());
        let back: ContainerState = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn runc_output_parses() {
        let runc = r#"{
  "ociVersion": "1.0.2-dev",
  "id": "x",
  "pid": 0,
  "status": "stopped",
  "bundle": "/tmp/b",
  "rootfs": "/tmp/b/rootfs",
  "created": "2024-01-02T03:04:05.123456789Z",
  "owner": ""
}"#;
        let s: ContainerState = serde_json::from_str(runc).unwrap();
        assert_eq!(s.status, Status::Stopped);
        assert!(s.annotations.is_empty());
    }

    #[test]
    fn read_errors() {
        let dir = TestDir::new();
        let missing = dir.path().join("nope.json");
        let err = read(&missing).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let bad = dir.path().join("bad.json");
        fs::write(&bad, "{\n  \"id\": 3\n}").unwrap();
        let err = read(&bad).unwrap_err();
        assert!(!err.is_not_found());
        let msg = err.to_string();
        assert!(msg.starts_with("malformed state file"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        // Writing into a directory that does not exist fails cleanly.
        let err = write_atomic(&dir.path().join("no/such/state.json"), &sample()).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot write state file"),
            "{err}"
        );
        assert!(write_atomic(Path::new("/"), &sample()).is_err());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = |s, n| rfc3339_utc(UNIX_EPOCH + Duration::new(s, n));
        assert_eq!(t(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(t(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(t(1_709_251_199, 120_000_000), "2024-02-29T23:59:59.12Z");
        assert_eq!(t(253_402_300_799, 0), "9999-12-31T23:59:59Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00Z"
        );
    }
}
