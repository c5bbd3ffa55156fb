//! The control protocol between the CLI verbs and a sandbox process:
//! one JSON request per line on `<root>/<id>/ctl.sock`, answered by one
//! JSON response per line (see docs/control-api.md), and the client side.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use resources::state::ContainerState;
use serde::{Deserialize, Serialize};

/// Longest request line a sandbox accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How long a client waits for the answer to anything but `wait`.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A request to the sandbox process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Start the container's program (status `created` → `running`).
    Start,
    /// Send `signal` (1..=64, or 0 to probe) to the container's init, or
    /// with `all` to every process of the container, or to the process
    /// `pid` or the process group `pgid` (container pids).
    Signal {
        signal: i32,
        #[serde(default)]
        all: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pgid: Option<i32>,
        /// For the pod container with this number (from `add-container`)
        /// instead of the sandbox's own: its first process, or its
        /// processes only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<u32>,
        /// For the foreground process group of the terminal of the
        /// `exec`'d process with this id (as ^C typed on it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exec: Option<u32>,
        /// For the foreground process group of the init's terminal (of the
        /// pod container's first process with `container`), as the
        /// terminal would send it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        foreground: bool,
    },
    /// Answer once the container has stopped, with its exit status.
    Wait,
    /// The container's state, as `ringfence state` prints it.
    State,
    /// Host pids of the container's processes.
    Ps,
    /// Suspend the container (`running`/`created` → `paused`).
    Pause,
    /// Let a paused container go on.
    Resume,
    /// Resource statistics, as `events --stats` prints them.
    Stats,
    /// Answer when one process has ended, with its exit status: the
    /// `exec`'d process `id` (the id a detached `exec` answered with), or
    /// the container's init (`pid` 1, or neither field).
    #[serde(rename = "wait-pid")]
    WaitPid {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
    },
    /// Start a process in the running container. Its stdin, stdout and
    /// stderr come with the request as SCM_RIGHTS; the answer (its exit
    /// status) comes when it ends, or at once with `detach` (with the
    /// process's `id` for `wait-pid`).
    Exec {
        args: Vec<String>,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        cwd: String,
        #[serde(default)]
        uid: u32,
        #[serde(default)]
        gid: u32,
        #[serde(default)]
        detach: bool,
        /// In the pod container with this number, beneath its root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<u32>,
    },
    /// Serve another container of the pod in this sandbox: its root
    /// filesystem (a host directory) under an overlay of its own. Answers
    /// with the container's number for `exec` and `signal`.
    #[serde(rename = "add-container")]
    AddContainer { id: String, rootfs: PathBuf },
}

/// A response: `ok` plus the fields of the request's answer, or `error`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `wait`: the exit status (the code, or 128+N after signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    /// `add-container`: the pod container's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<u32>,
    /// A detached `exec`: the process's id, for `wait-pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// `ps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Vec<i32>>,
    /// `stats`: runc's `data` object of a stats event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<serde_json::Value>,
}

impl Response {
    pub fn ok() -> Self {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    pub fn error(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            ..Response::default()
        }
    }

    /// The response as one line of JSON, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self)
            .unwrap_or_else(|_| br#"{"ok":false,"error":"cannot encode the response"}"#.to_vec());
        v.push(b'\n');
        v
    }
}

/// Failures of a control call.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the sandbox process of container \"{id}\" is not reachable: {source}")]
    Unreachable { id: String, source: io::Error },
    #[error("control socket of container \"{id}\": {source}")]
    Io { id: String, source: io::Error },
    #[error("the sandbox process of container \"{id}\" closed the connection without answering")]
    NoAnswer { id: String },
    #[error("malformed answer from the sandbox of container \"{id}\": {source}")]
    Malformed {
        id: String,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// Sun paths hold 108 bytes; longer socket paths go through the directory.
const MAX_SUN_PATH: usize = 107;

/// A path naming `socket` that fits in a `sockaddr_un`: the path itself, or
/// `/proc/self/fd/N/NAME` through an open fd of its directory (kept in the
/// returned `File`, which must outlive the bind or connect).
pub fn short_socket_path(socket: &Path) -> io::Result<(Option<File>, PathBuf)> {
    if socket.as_os_str().len() <= MAX_SUN_PATH {
        return Ok((None, socket.to_path_buf()));
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad socket path",
        ));
    };
    let dirf = File::open(dir)?;
    let path = Path::new(&format!("/proc/self/fd/{}", dirf.as_raw_fd())).join(name);
    Ok((Some(dirf), path))
}

/// Sends `req` to the sandbox listening on `socket` and reads its answer.
/// `timeout` bounds the wait for the answer (`None`: wait for ever, for
/// `wait`). A refused request becomes [`ControlError::Refused`].
pub fn call(
    id: &str,
    socket: &Path,
    req: &Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    call_with_fds(id, socket, req, &[], timeout)
}

/// As [`call`], passing `fds` with the request (SCM_RIGHTS).
pub fn call_with_fds(
    id: &str,
    socket: &Path,
    req: &Request,
    fds: &[std::os::fd::RawFd],
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    let unreachable = |source| ControlError::Unreachable {
        id: id.to_string(),
        source,
    };
    let io_err = |source| ControlError::Io {
        id: id.to_string(),
        source,
    };
    let (_dir, path) = short_socket_path(socket).map_err(unreachable)?;
    let mut stream = UnixStream::connect(&path).map_err(unreachable)?;
    stream.set_read_timeout(timeout).map_err(io_err)?;
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_err)?;
    let mut line = serde_json::to_vec(req).map_err(|e| io_err(io::Error::other(e)))?;
    line.push(b'\n');
    if fds.is_empty() {
        stream.write_all(&line).map_err(io_err)?;
    } else {
        use std::os::fd::AsRawFd;
        let iov = [io::IoSlice::new(&line)];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(fds)];
        let n = nix::sys::socket::sendmsg::<()>(
            stream.as_raw_fd(),
            &iov,
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .map_err(|e| io_err(io::Error::from(e)))?;
        if n < line.len() {
            stream.write_all(&line[n..]).map_err(io_err)?;
        }
    }
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(io_err)?;
    if answer.trim().is_empty() {
        return Err(ControlError::NoAnswer { id: id.to_string() });
    }
    let resp: Response =
        serde_json::from_str(&answer).map_err(|source| ControlError::Malformed {
            id: id.to_string(),
            source,
        })?;
    if resp.ok {
        Ok(resp)
    } else {
        Err(ControlError::Refused(
            resp.error.unwrap_or_else(|| "request refused".into()),
        ))
    }
}

/// Read from a control connection, keeping any descriptors that came with
/// the bytes (SCM_RIGHTS; at most three are kept).
pub(crate) fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<std::os::fd::OwnedFd>,
) -> io::Result<usize> {
    use std::os::fd::FromRawFd;
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 3]);
    let msg = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let n = msg.bytes;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(received) = c {
            for fd in received {
                // SAFETY: the kernel just installed `fd` in this process for
                // us; nothing else owns it.
                let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
                if fds.len() < 3 {
                    fds.push(owned);
                }
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r: Request = serde_json::from_str(r#"{"op":"signal","signal":9}"#).expect("parse");
        assert_eq!(
            r,
            Request::Signal {
                signal: 9,
                all: false,
                pid: None,
                pgid: None,
                container: None,
                exec: None,
                foreground: false,
            }
        );
        let r: Request = serde_json::from_str(r#"{"op":"start"}"#).expect("parse");
        assert_eq!(r, Request::Start);
        assert!(serde_json::from_str::<Request>(r#"{"op":"fly"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"signal"}"#).is_err());
        assert!(serde_json::from_str::<Request>("[1,2]").is_err());
        let line = serde_json::to_string(&Request::Wait).expect("encode");
        assert_eq!(line, r#"{"op":"wait"}"#);
        for (text, req) in [
            (r#"{"op":"pause"}"#, Request::Pause),
            (r#"{"op":"resume"}"#, Request::Resume),
            (r#"{"op":"stats"}"#, Request::Stats),
            (
                r#"{"op":"wait-pid","id":3}"#,
                Request::WaitPid {
                    id: Some(3),
                    pid: None,
                },
            ),
            (
                r#"{"op":"wait-pid"}"#,
                Request::WaitPid {
                    id: None,
                    pid: None,
                },
            ),
        ] {
            assert_eq!(serde_json::from_str::<Request>(text).expect("parse"), req);
        }
    }

    #[test]
    fn response_wire_format() {
        assert_eq!(Response::ok().to_line(), b"{\"ok\":true}\n");
        let e = Response::error("no");
        assert_eq!(e.to_line(), b"{\"ok\":false,\"error\":\"no\"}\n");
    }

    #[test]
    fn long_socket_paths_go_through_the_directory() {
        let short = Path::new("/run/x/ctl.sock");
        let (f, p) = short_socket_path(short).expect("short");
        assert!(f.is_none());
        assert_eq!(p, short);
        let long = std::env::temp_dir().join("a".repeat(120)).join("ctl.sock");
        // The directory does not exist: a clean error, no panic.
        assert!(short_socket_path(&long).is_err());
        let long = std::env::temp_dir().join(format!("{}ctl.sock", "x".repeat(120)));
        let (f, p) = short_socket_path(&long).expect("dir exists");
        assert!(f.is_some());
        assert!(p.starts_with("/proc/self/fd/"));
    }
}
