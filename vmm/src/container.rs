//! A container's state directory under `--root`, as the CLI verbs see it.
//!
//! `<root>/<id>/` holds:
//! - `state.json`: runc's state document ([`ContainerState`]), written
//!   atomically by the sandbox process at each change of status;
//! - `sandbox.json`: what runc keeps privately: the sandbox process's pid and
//!   start time (so a recycled pid is never mistaken for it) and, once the
//!   container has stopped, its exit status;
//! - `lock`: `flock`ed by the verbs that change the container (create,
//!   start, kill, delete), so concurrent verbs on one id run one at a time;
//! - `ctl.sock`: the control socket of the live sandbox process
//!   (docs/control-api.md).
//!
//! `state.json` can lag behind reality only when the sandbox process was
//! killed outright; [`Container::load`] then reports the container as
//! stopped, as runc does for a dead init.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, error};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use resources::state::{self, ContainerState, Status};
use serde::{Deserialize, Serialize};

/// Failures around a container's state directory.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error("cannot record state in {path}: {source}")]
    State {
        path: PathBuf,
        source: state::StateError,
    },
    #[error("cannot read the state of container \"{id}\": {source}")]
    ReadState {
        id: String,
        source: state::StateError,
    },
    #[error("cannot write pid file {path}: {source}")]
    PidFile { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("the sandbox process {pid} of container \"{id}\" did not die after SIGKILL")]
    Unkillable { id: String, pid: i32 },
}

/// The private record of a container's sandbox process (`sandbox.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Host pid of the sandbox process.
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    /// The container's exit status (the code, or 128+N), once stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
}

/// Paths of one container's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The directory of `id` under `root` (not checked).
    pub fn new(root: &Path, id: &str) -> Self {
        StateDir {
            path: root.join(id),
        }
    }

    /// Claims `<root>/<id>`: fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Self, ContainerError> {
        fs::create_dir_all(root).map_err(|source| ContainerError::StateDir {
            path: root.to_path_buf(),
            source,
        })?;
        let dir = StateDir::new(root, id);
        match fs::create_dir(&dir.path) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(ContainerError::Exists(id.to_string()))
            }
            Err(source) => Err(ContainerError::StateDir {
                path: dir.path,
                source,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn sandbox_file(&self) -> PathBuf {
        self.path.join("sandbox.json")
    }

    pub fn socket(&self) -> PathBuf {
        self.path.join("ctl.sock")
    }

    /// Takes the container's lock, waiting for the verb that holds it.
    pub fn lock(&self) -> Result<Flock<File>, ContainerError> {
        let path = self.path.join("lock");
        let err = |source| ContainerError::Lock {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| err(e.into()))
    }

    /// Writes `state.json` atomically.
    pub fn write_state(&self, st: &ContainerState) -> Result<(), ContainerError> {
        let path = self.state_file();
        state::write_atomic(&path, st).map_err(|source| ContainerError::State { path, source })
    }

    /// Writes `sandbox.json` atomically.
    pub fn write_record(&self, rec: &SandboxRecord) -> Result<(), ContainerError> {
        let path = self.sandbox_file();
        let data = serde_json::to_vec(rec).map_err(|e| ContainerError::StateDir {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        write_file_atomic(&path, &data).map_err(|source| ContainerError::StateDir { path, source })
    }

    /// Reads `sandbox.json`; a missing or unreadable one reads as empty.
    pub fn read_record(&self) -> SandboxRecord {
        match fs::read(self.sandbox_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                error!("malformed {}: {e}", self.sandbox_file().display());
                SandboxRecord::default()
            }),
            Err(_) => SandboxRecord::default(),
        }
    }

    /// Removes the whole directory. A sandbox process that is still
    /// finishing may rename a file into it meanwhile, hence the retries.
    pub fn remove(&self) -> Result<(), ContainerError> {
        let mut last = None;
        for _ in 0..5 {
            match fs::remove_dir_all(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(ContainerError::Remove {
            path: self.path.clone(),
            source: last.unwrap_or_else(|| io::Error::other("unknown error")),
        })
    }
}

/// Writes `data` to `path` through a temporary file and `rename`, so that
/// readers never see a partial file (as runc writes its pid file).
pub fn write_file_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A container as found on disk, its status corrected for a dead sandbox.
#[derive(Debug)]
pub struct Container {
    pub dir: StateDir,
    pub state: ContainerState,
    pub record: SandboxRecord,
}

impl Container {
    /// Loads `<root>/<id>`. A container whose sandbox process is gone is
    /// reported stopped with pid 0, whatever `state.json` says.
    pub fn load(root: &Path, id: &str) -> Result<Self, ContainerError> {
        resources::validate_container_id(id).map_err(|_| ContainerError::NotFound(id.into()))?;
        let dir = StateDir::new(root, id);
        let mut state = match state::read(&dir.state_file()) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Err(ContainerError::NotFound(id.into())),
            Err(source) => {
                return Err(ContainerError::ReadState {
                    id: id.into(),
                    source,
                })
            }
        };
        let record = dir.read_record();
        if state.status != Status::Stopped && !sandbox_alive(&record) {
            debug!(
                "container {id}: sandbox process {} is gone; reporting it stopped",
                record.pid
            );
            state.status = Status::Stopped;
            state.pid = 0;
        }
        Ok(Container { dir, state, record })
    }

    /// Whether the sandbox process still runs.
    pub fn sandbox_alive(&self) -> bool {
        sandbox_alive(&self.record)
    }

    /// SIGKILLs the sandbox process (if it still runs) and waits for it to
    /// die, up to a few seconds.
    pub fn kill_sandbox(&self) -> Result<(), ContainerError> {
        if !self.sandbox_alive() {
            return Ok(());
        }
        debug!("killing sandbox process {}", self.record.pid);
        if let Err(e) = kill(Pid::from_raw(self.record.pid), Signal::SIGKILL) {
            debug!("kill({}): {e}", self.record.pid);
        }
        self.wait_sandbox_gone(Duration::from_secs(5))
            .then_some(())
            .ok_or_else(|| ContainerError::Unkillable {
                id: self.state.id.clone(),
                pid: self.record.pid,
            })
    }

    /// Waits up to `limit` for the sandbox process to end; true once gone.
    pub fn wait_sandbox_gone(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while self.sandbox_alive() {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

/// The start time of process `pid` (clock ticks since boot) and whether it
/// is a zombie; `None` if there is no such process.
pub fn process_start_time(pid: i32) -> Option<(u64, bool)> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. They are then state (3), ..., starttime (22).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    let start = fields.get(19)?.parse().ok()?;
    Some((start, zombie))
}

/// Whether the process named by `rec` is alive: same pid, same start time,
/// not a zombie.
fn sandbox_alive(rec: &SandboxRecord) -> bool {
    match process_start_time(rec.pid) {
        Some((start, zombie)) => start == rec.start_time && !zombie,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_stable() {
        let pid = i32::try_from(std::process::id()).expect("pid fits");
        let (a, zombie) = process_start_time(pid).expect("own stat");
        assert!(!zombie);
        assert_eq!(process_start_time(pid).map(|x| x.0), Some(a));
        let rec = SandboxRecord {
            pid,
            start_time: a,
            exit_status: None,
        };
        assert!(sandbox_alive(&rec));
        assert!(!sandbox_alive(&SandboxRecord {
            start_time: a + 1,
            ..rec.clone()
        }));
        assert!(!sandbox_alive(&SandboxRecord::default()));
        assert_eq!(process_start_time(-5), None);
    }
}
