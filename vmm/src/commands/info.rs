//! The verbs that only look: `state`, `list`, `wait`, `ps`, `features`
//! and `spec`. None takes the container's lock: `state.json` is replaced
//! atomically, so a reader sees a whole old or a whole new state.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use resources::state::{ContainerState, Status};
use serde_json::json;

use crate::cli::{Cli, Format};
use crate::container::Container;
use crate::control::{self, Request};
use crate::CliError;

fn print_json(v: &impl serde::Serialize, pretty: bool) -> Result<(), CliError> {
    let text = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .map_err(|e| CliError::Io(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// `ringfence state`: runc's JSON, indented as runc indents it (and, as
/// runc, without a final newline).
pub fn state(cli: &Cli, id: &str) -> Result<u8, CliError> {
    let c = Container::load(&cli.root, id)?;
    let text = serde_json::to_string_pretty(&c.state)
        .map_err(|e| CliError::Io(format!("cannot encode JSON: {e}")))?;
    print!("{text}");
    Ok(0)
}

/// The user name of `uid` from /etc/passwd, else the number (as runc).
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(u)) => u.name,
        _ => format!("#{uid}"),
    }
}

/// Every container under `root`, sorted by id, with `owner` filled in.
fn containers(root: &Path) -> Vec<ContainerState> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return out;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        match Container::load(root, &name) {
            Ok(c) => {
                let mut st = c.state;
                st.owner = fs::metadata(c.dir.path())
                    .map(|m| user_name(m.uid()))
                    .unwrap_or_default();
                out.push(st);
            }
            Err(e) => log::debug!("list: skipping {name}: {e}"),
        }
    }
    out
}

/// Lays out rows like Go's tabwriter with runc's settings (minimum cell
/// width 12, padding 3): every cell but the last is padded to its
/// column's width.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols.saturating_sub(1)) {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(12));
        }
    }
    let mut s = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                s.push_str(&format!("{cell:<w$}", w = widths[i]));
            } else {
                s.push_str(cell);
            }
        }
        s.push('\n');
    }
    s
}

/// `ringfence list`.
pub fn list(cli: &Cli, format: Format, quiet: bool) -> Result<u8, CliError> {
    let all = containers(&cli.root);
    if quiet {
        for c in &all {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    match format {
        Format::Json => {
            // runc prints `null` for no containers.
            if all.is_empty() {
                println!("null");
            } else {
                print_json(&all, false)?;
            }
        }
        Format::Table => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec()];
            for c in &all {
                rows.push(vec![
                    c.id.clone(),
                    c.pid.to_string(),
                    c.status.to_string(),
                    c.bundle.display().to_string(),
                    c.created.clone(),
                    c.owner.clone(),
                ]);
            }
            print!("{}", table(&rows));
        }
    }
    Ok(0)
}

/// `ringfence wait`: prints the container's exit status once it has one.
pub fn wait(cli: &Cli, id: &str) -> Result<u8, CliError> {
    let c = Container::load(&cli.root, id)?;
    let (status, failure) = if c.state.status == Status::Stopped {
        (None, None)
    } else {
        match control::call(id, &c.dir.socket(), &Request::Wait, None) {
            Ok(resp) => (resp.status, None),
            // The sandbox may have ended meanwhile (the socket is gone, or
            // the connection was reset as it exited): its record says how.
            Err(e) => (None, Some(e)),
        }
    };
    let status = match status {
        Some(s) => s,
        None => {
            let c = Container::load(&cli.root, id)?;
            match (c.record.exit_status, failure) {
                (Some(s), _) => s,
                (None, Some(e)) if c.state.status != Status::Stopped => return Err(e.into()),
                (None, _) => {
                    return Err(CliError::Io(format!(
                        "the exit status of container {id} is unknown: its sandbox process \
                         ended without recording one"
                    )))
                }
            }
        }
    };
    println!("{status}");
    Ok(0)
}

/// `ringfence ps`: the host processes of a running container, as pids in
/// JSON or as the matching lines of `ps -ef` (or the given ps options).
pub fn ps(cli: &Cli, id: &str, format: Format, ps_args: &[String]) -> Result<u8, CliError> {
    let c = Container::load(&cli.root, id)?;
    if c.state.status == Status::Stopped {
        return Err(CliError::Io(format!("container {id} is not running")));
    }
    let resp = control::call(
        id,
        &c.dir.socket(),
        &Request::Ps,
        Some(control::REPLY_TIMEOUT),
    )?;
    let pids = resp.pids.unwrap_or_default();
    if format == Format::Json {
        print_json(&pids, false)?;
        return Ok(0);
    }
    let args: Vec<&str> = if ps_args.is_empty() {
        vec!["-ef"]
    } else {
        ps_args.iter().map(String::as_str).collect()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| CliError::Io(format!("cannot run ps: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Io(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| CliError::Io("ps output has no PID column".into()))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

/// A Go-style duration: `500ms`, `5s`, `1m`, `1.5s`.
fn parse_interval(raw: &str) -> Result<Duration, CliError> {
    let bad = || {
        CliError::Io(format!(
            "invalid --interval {raw:?}: use e.g. 500ms, 5s or 1m"
        ))
    };
    let s = raw.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `ringfence events [--stats] [--interval D] ID`: runc's stats events,
/// `{"type":"stats","id":ID,"data":{...}}`, one per line.
pub fn events(cli: &Cli, id: &str, once: bool, interval: &str) -> Result<u8, CliError> {
    let every = parse_interval(interval)?;
    loop {
        let c = Container::load(&cli.root, id)?;
        if c.state.status == Status::Stopped {
            if once {
                return Err(CliError::Io("container not running".into()));
            }
            return Ok(0);
        }
        let resp = match control::call(
            id,
            &c.dir.socket(),
            &Request::Stats,
            Some(control::REPLY_TIMEOUT),
        ) {
            Ok(r) => r,
            // It stopped meanwhile: the stream ends as runc's does.
            Err(_) if !once && !c.sandbox_alive() => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let event = json!({
            "type": "stats",
            "id": id,
            "data": resp.stats.unwrap_or_else(|| json!({})),
        });
        print_json(&event, false)?;
        if once {
            return Ok(0);
        }
        std::io::Write::flush(&mut std::io::stdout())
            .map_err(|e| CliError::Io(format!("stdout: {e}")))?;
        std::thread::sleep(every);
    }
}

/// `ringfence features`: runc's `features` document, for what ringfence
/// does. Host cgroups, seccomp, AppArmor and SELinux are not used: the
/// sentry is the isolation.
pub fn features() -> Result<u8, CliError> {
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": resources::DEFAULT_OCI_VERSION,
        "hooks": [],
        "mountOptions": [],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [],
            "cgroup": {"v1": false, "v2": false, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "dev.ringfence.version": env!("CARGO_PKG_VERSION"),
            "dev.ringfence.platforms": "kvm,ptrace"
        }
    });
    print_json(&doc, true)?;
    Ok(0)
}

/// `ringfence spec`: writes a default `config.json`, as `runc spec` does.
pub fn spec(bundle: &Path) -> Result<u8, CliError> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(CliError::Io(format!(
            "{}: file already exists",
            path.display()
        )));
    }
    fs::write(&path, resources::default_spec_json())
        .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_interval("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_interval("1m").ok(), Some(Duration::from_secs(60)));
        for bad in ["", "5", "s", "-1s", "0s", "1h", "1e400s", "NaNs", "1..5s"] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn table_pads_like_tabwriter() {
        let rows = vec![
            vec!["ID".to_string(), "PID".into(), "OWNER".into()],
            vec!["a-very-long-id".to_string(), "7".into(), "root".into()],
        ];
        assert_eq!(
            table(&rows),
            "ID               PID         OWNER\na-very-long-id   7           root\n"
        );
        assert_eq!(table(&[]), "");
    }
}
