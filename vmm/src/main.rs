//! `ringfence`: the runtime binary. Thin verbs over the sandbox builder.

mod cli;
mod container;
mod logger;
mod sandbox;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// A failure that ends the command with a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Spec(#[from] resources::SpecError),
    #[error(transparent)]
    Container(#[from] container::ContainerError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("{0}")]
    Io(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logger::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("ringfence: cannot open log file: {e}");
        return ExitCode::from(1);
    }
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log::error!("{e}");
            // With --log the message must still reach the user.
            if cli.log.is_some() {
                eprintln!("ringfence: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: &Cli) -> Result<u8, CliError> {
    match &cli.command {
        Command::Run {
            bundle,
            pid_file,
            id,
        } => container::run(cli, bundle, pid_file.as_deref(), id),
        Command::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(CliError::Io(format!(
                    "{}: file already exists",
                    path.display()
                )));
            }
            std::fs::write(&path, resources::default_spec_json())
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
            Ok(0)
        }
    }
}
