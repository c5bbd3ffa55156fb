//! The control server's process requests: `exec`, `wait-pid`, and a pod's
//! `add-container`.

use std::path::Path;

use log::{debug, info};

use super::{Phase, Server, EXEC_STATUS_KEPT};
use crate::control::{Request, Response};
use crate::sandbox;

impl Server {
    /// `add-container`: serve a pod container's root; its number.
    pub(super) fn add_container(&mut self, id: String, rootfs: &Path) -> Response {
        if self.member.is_some() {
            return Response::error("this container is not a pod's sandbox");
        }
        if self.phase != Phase::Running {
            return Response::error("the pod's sandbox container is not running");
        }
        match self.port.add_root(rootfs) {
            Ok(n) => {
                info!("pod container {id} joins with root {}", rootfs.display());
                self.containers.insert(n, id);
                Response {
                    container: Some(n),
                    ..Response::ok()
                }
            }
            Err(e) => Response::error(format!("cannot serve the root: {e}")),
        }
    }

    /// `exec`'d processes ended: record their statuses and answer the
    /// connections parked on them (the `exec` itself and any `wait-pid`).
    pub(super) fn on_exec_exit(&mut self) {
        let _ = self.exec_evt.read();
        while let Ok((id, code)) = self.exec_rx.try_recv() {
            self.exec_live.remove(&id);
            self.pod_mains.remove(&id);
            self.exec_done.insert(id, code);
            if self.exec_done.len() > EXEC_STATUS_KEPT {
                self.exec_done.pop_first();
            }
            let tokens: Vec<u32> = self
                .conns
                .iter()
                .filter(|(_, c)| c.exec_id == Some(id))
                .map(|(t, _)| *t)
                .collect();
            for token in tokens {
                if let Some(c) = self.conns.get_mut(&token) {
                    c.exec_id = None;
                }
                self.reply(
                    token,
                    &Response {
                        status: Some(code),
                        ..Response::ok()
                    },
                );
            }
            debug!("exec {id} ended with {code}");
        }
        // Connections parked behind an answer may hold more requests.
        let ready: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.exec_id.is_none() && !c.buf.is_empty())
            .map(|(t, _)| *t)
            .collect();
        for token in ready {
            self.serve_lines(token);
        }
    }

    /// `signal` with `exec`: `n` for the foreground process group of the
    /// terminal of `exec`'d process `id`.
    pub(super) fn signal_exec(&mut self, n: i32, id: u32) -> Result<(), String> {
        if !(1..=crate::signal::SIGRTMAX).contains(&n) {
            return Err(format!("invalid signal {n}"));
        }
        if self.phase != Phase::Running || !self.exec_live.contains(&id) {
            return Err(format!("no running process with id {id}"));
        }
        let pid = i32::try_from(id).map_err(|_| format!("bad id {id}"))?;
        self.port.send_or_queue(guest_kernel::platform::HostSignal {
            pid,
            sig: n,
            exec: true,
            ..Default::default()
        });
        Ok(())
    }

    /// `wait-pid`: park `token` until the process ends, or answer now.
    pub(super) fn wait_pid(
        &mut self,
        token: u32,
        id: Option<u32>,
        pid: Option<i32>,
    ) -> Option<Response> {
        let exited = |code| Response {
            status: Some(code),
            ..Response::ok()
        };
        match (id, pid) {
            (Some(_), Some(_)) => Some(Response::error("wait-pid: give id or pid, not both")),
            (None, None | Some(1)) => match self.phase {
                Phase::Stopped(code) => Some(exited(code)),
                _ => {
                    if let Some(c) = self.conns.get_mut(&token) {
                        c.waiting = true;
                    }
                    None
                }
            },
            (None, Some(p)) => Some(Response::error(format!(
                "wait-pid: pid {p}: only the init (pid 1) is waited for by pid; \
                 give an exec'd process's id"
            ))),
            (Some(id), None) => {
                if let Some(&code) = self.exec_done.get(&id) {
                    return Some(exited(code));
                }
                if !self.exec_live.contains(&id) {
                    return Some(Response::error(format!(
                        "wait-pid: no process with id {id}"
                    )));
                }
                if let Some(c) = self.conns.get_mut(&token) {
                    c.exec_id = Some(id);
                }
                None
            }
        }
    }

    /// `exec`: start a process with the stdio the client sent.
    pub(super) fn exec(&mut self, token: u32, req: Request) -> Option<Response> {
        let Request::Exec {
            args,
            env,
            cwd,
            uid,
            gid,
            detach,
            container,
        } = req
        else {
            return Some(Response::error("not an exec request"));
        };
        if self.phase != Phase::Running {
            return Some(Response::error(
                "cannot exec in a container that is not running",
            ));
        }
        if args.is_empty() {
            return Some(Response::error("exec: no command given"));
        }
        let container = container.unwrap_or(0);
        if container != 0 && (self.member.is_some() || !self.containers.contains_key(&container)) {
            return Some(Response::error(format!(
                "exec: no pod container {container} in this sandbox"
            )));
        }
        let fds: Vec<std::os::fd::OwnedFd> = match self.conns.get_mut(&token) {
            Some(c) => std::mem::take(&mut c.fds),
            None => return None,
        };
        let Ok([i, o, e]) = <[std::os::fd::OwnedFd; 3]>::try_from(fds) else {
            return Some(Response::error(
                "exec: the request must carry stdin, stdout and stderr",
            ));
        };
        let cwd = if cwd.is_empty() { "/".to_string() } else { cwd };
        let spec = sandbox::ExecSpec {
            args,
            env,
            cwd,
            uid,
            gid,
            stdio: [i, o, e],
            container,
        };
        let started = self.port.exec(spec);
        if let Ok(id) = started {
            self.exec_live.insert(id);
            if container != 0 && !self.pod_mains.values().any(|&n| n == container) {
                self.pod_mains.insert(id, container);
            }
        }
        match started {
            Ok(id) if detach => Some(Response {
                id: Some(id),
                ..Response::ok()
            }),
            Ok(id) => {
                if let Some(c) = self.conns.get_mut(&token) {
                    c.exec_id = Some(id);
                }
                None
            }
            Err(msg) => Some(Response::error(msg)),
        }
    }
}
