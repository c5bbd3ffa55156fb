//! The process logger: text or JSON lines to stderr or `--log FILE`, in
//! the shape runc's `--log-format` produces, so shims can parse it.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Output format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

struct Logger {
    format: LogFormat,
    out: Mutex<Box<dyn Write + Send>>,
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

impl Log for Logger {
    fn enabled(&self, _m: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let time = resources::state::rfc3339_utc(SystemTime::now());
        let msg = record.args().to_string();
        let line = match self.format {
            LogFormat::Text => format!(
                "{time} {:<7} [{}] {msg}\n",
                level_name(record.level()),
                record.target()
            ),
            LogFormat::Json => {
                let v = serde_json::json!({ "level": level_name(record.level()), "msg": msg, "time": time });
                format!("{v}\n")
            }
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}

/// Install the logger. Warnings and errors always go out; `debug` adds the rest.
pub fn init(file: Option<&std::path::Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = match file {
        Some(p) => Box::new(File::options().create(true).append(true).open(p)?),
        None => Box::new(std::io::stderr()),
    };
    let level = match std::env::var("RINGFENCE_TRACE") {
        Ok(_) => LevelFilter::Trace,
        Err(_) if debug => LevelFilter::Debug,
        Err(_) => LevelFilter::Warn,
    };
    if log::set_boxed_logger(Box::new(Logger {
        format,
        out: Mutex::new(out),
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
    Ok(())
}
