//! `ringfence`: the runtime binary. Thin verbs over the sandbox builder.

mod cli;
mod commands;
mod container;
mod control;
mod logger;
mod pod;
mod sandbox;
mod server;
mod signal;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use cli::{Cli, Command};
use commands::{create, do_cmd, info, lifecycle};

/// A failure that ends the command with a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Spec(#[from] resources::SpecError),
    #[error(transparent)]
    Container(#[from] container::ContainerError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error(transparent)]
    Signal(#[from] signal::BadSignal),
    #[error("{0}")]
    Io(String),
}

/// Reports a failure as one line: to the log, and also on stderr when the
/// log goes to a file, so that the user always sees it.
pub fn report_error(cli: &Cli, msg: &str) {
    log::error!("{msg}");
    if cli.log.is_some() {
        eprintln!("ringfence: {msg}");
    }
}

fn main() -> ExitCode {
    // The ptrace platform's TSC calibration measures from here.
    ptrace_fallback::tsc::prime();
    let cli = Arc::new(Cli::parse());
    if let Err(e) = logger::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("ringfence: cannot open log file: {e}");
        return ExitCode::from(1);
    }
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report_error(&cli, &e.to_string());
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: &Arc<Cli>) -> Result<u8, CliError> {
    if !matches!(cli.command, Command::Create(_) | Command::Run { .. }) {
        create::note_ignored_flags(cli, None);
    }
    match &cli.command {
        Command::Create(args) => create::create(cli, args),
        Command::Run { create, detach } => create::run(Arc::clone(cli), create, *detach),
        Command::TtyMonitor { id } => commands::tty::tty_monitor(cli, id),
        Command::SandboxInit {
            bundle,
            ready_fd,
            pid_file,
            console,
            id,
        } => Ok(create::sandbox_init(
            Arc::clone(cli),
            bundle,
            *ready_fd,
            pid_file.as_deref(),
            *console,
            id,
        )),
        Command::Start { id } => lifecycle::start(cli, id),
        Command::Kill { all, id, signal } => lifecycle::kill(cli, id, signal, *all),
        Command::Delete { force, id } => lifecycle::delete(cli, id, *force),
        Command::Pause { id } => lifecycle::pause(cli, id),
        Command::Resume { id } => lifecycle::resume(cli, id),
        Command::Exec {
            process,
            tty,
            detach,
            pid_file,
            console_socket,
            cwd,
            env,
            user,
            id,
            command,
        } => {
            let args = lifecycle::ExecArgs {
                process: process.as_deref(),
                tty: *tty,
                console_socket: console_socket.as_deref(),
                detach: *detach,
                pid_file: pid_file.as_deref(),
                cwd: cwd.as_deref(),
                env,
                user: user.as_deref(),
                command,
            };
            lifecycle::exec(cli, id, &args)
        }
        Command::Events {
            stats,
            interval,
            id,
        } => info::events(cli, id, *stats, interval),
        Command::State { id } => info::state(cli, id),
        Command::List { format, quiet } => info::list(cli, *format, *quiet),
        Command::Wait { id } => info::wait(cli, id),
        Command::Ps {
            format,
            id,
            ps_args,
        } => info::ps(cli, id, *format, ps_args),
        Command::Features => info::features(),
        Command::Spec { bundle } => info::spec(bundle),
        Command::Do { cwd, env, command } => do_cmd::run(cli, cwd.as_deref(), env, command),
    }
}
