//! Container lifecycle: the state directory under `--root` and `run`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use log::{debug, error};
use resources::state::{self, ContainerState, Status};

use crate::cli::Cli;
use crate::sandbox;
use crate::CliError;

/// Failures around a container's state directory.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error("cannot record state in {path}: {source}")]
    State {
        path: PathBuf,
        source: state::StateError,
    },
    #[error("cannot write pid file {path}: {source}")]
    PidFile { path: PathBuf, source: io::Error },
}

/// The state directory of a live container; removed when dropped, so an
/// error at any step leaves nothing behind.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Claim `<root>/<id>`; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Self, ContainerError> {
        fs::create_dir_all(root).map_err(|source| ContainerError::StateDir {
            path: root.to_path_buf(),
            source,
        })?;
        let path = root.join(id);
        match fs::create_dir(&path) {
            Ok(()) => Ok(StateDir { path }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(ContainerError::Exists(id.to_string()))
            }
            Err(source) => Err(ContainerError::StateDir { path, source }),
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            error!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// `ringfence run`: create, start and wait for a container, then delete it.
pub fn run(cli: &Cli, bundle: &Path, pid_file: Option<&Path>, id: &str) -> Result<u8, CliError> {
    resources::validate_container_id(id)?;
    let bundle = fs::canonicalize(bundle)
        .map_err(|e| CliError::Io(format!("bundle {}: {e}", bundle.display())))?;
    let spec = resources::load_bundle(&bundle)?;
    let dir = StateDir::create(&cli.root, id)?;
    let pid = std::process::id() as i32;
    let st = ContainerState {
        oci_version: resources::DEFAULT_OCI_VERSION.to_string(),
        id: id.to_string(),
        pid,
        status: Status::Running,
        bundle: bundle.clone(),
        rootfs: spec.root.clone(),
        created: state::rfc3339_utc(SystemTime::now()),
        owner: String::new(),
        annotations: spec.annotations.clone(),
    };
    let path = dir.state_file();
    state::write_atomic(&path, &st).map_err(|source| ContainerError::State { path, source })?;
    if let Some(p) = pid_file {
        fs::write(p, pid.to_string()).map_err(|source| ContainerError::PidFile {
            path: p.to_path_buf(),
            source,
        })?;
    }
    let status = sandbox::run(cli, &spec)?;
    debug!("container {id} ended: {status:?}");
    drop(dir);
    sandbox::report(&status);
    Ok(status.code() as u8)
}
