//! `config.json` → [`SandboxSpec`]: parsing, defaults and validation.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::default_spec::DEFAULT_HOSTNAME;
use crate::{Rlimit, RlimitResource, SpecError};

/// Longest hostname accepted (Linux `HOST_NAME_MAX`; `utsname.nodename` holds
/// 64 bytes plus a NUL).
pub const MAX_HOSTNAME_LEN: usize = 64;

/// Validated, platform-neutral description of the container to run.
///
/// Built from an OCI bundle by [`load_bundle`] / [`parse_config`]. Every
/// field has been checked; consumers need not re-validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// `process.args`: the program and its arguments. Never empty; no
    /// element contains a NUL byte.
    pub args: Vec<String>,
    /// `process.env`, each `"K=V"` with a non-empty `K`. Empty when absent.
    pub env: Vec<String>,
    /// `process.cwd`, an absolute path inside the container. `"/"` when absent.
    pub cwd: String,
    /// `hostname`, at most [`MAX_HOSTNAME_LEN`] bytes. When the spec has no
    /// hostname (or an empty one) this is [`DEFAULT_HOSTNAME`]: runc would
    /// keep the host's UTS name then, which a sandbox has no business showing.
    pub hostname: String,
    /// `process.user.uid`, 0 when absent.
    pub uid: u32,
    /// `process.user.gid`, 0 when absent.
    pub gid: u32,
    /// `process.user.additionalGids`.
    pub additional_gids: Vec<u32>,
    /// `process.rlimits`: no duplicates, `soft <= hard`.
    pub rlimits: Vec<Rlimit>,
    /// `root.path` resolved against the bundle directory and canonicalized;
    /// an existing directory.
    pub root: PathBuf,
    /// `root.readonly`, false when absent.
    pub root_readonly: bool,
    /// `process.terminal`, false when absent.
    pub terminal: bool,
    /// `linux.resources.memory.limit` when it is > 0 (-1 means unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// `linux.resources.cpu.quota / period` (in CPUs) when both are > 0.
    pub cpu_limit: Option<f64>,
    /// `mounts`, in order, with their strings kept raw.
    pub mounts: Vec<Mount>,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// One entry of `mounts`, kept as the raw strings of `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mount {
    /// Where it goes in the container. Non-empty, no NUL. Normally absolute;
    /// a relative one is kept as is (runc reads it relative to `/`).
    pub destination: String,
    /// The file-system type (`"proc"`, `"tmpfs"`, `"bind"`, ...).
    pub typ: Option<String>,
    /// What to mount (a device, a host path for binds, or a dummy name).
    pub source: Option<String>,
    /// `mount(8)`-style options (`"nosuid"`, `"mode=755"`, `"rbind"`, ...).
    pub options: Vec<String>,
}

/// Reads and validates `bundle_dir/config.json`.
///
/// `root.path` is resolved against `bundle_dir`.
pub fn load_bundle(bundle_dir: &Path) -> Result<SandboxSpec, SpecError> {
    let path = bundle_dir.join("config.json");
    let bytes = fs::read(&path).map_err(|source| {
        let bundle = bundle_dir.to_path_buf();
        if source.kind() == io::ErrorKind::NotFound {
            SpecError::ConfigNotFound { bundle, source }
        } else {
            SpecError::ConfigUnreadable { bundle, source }
        }
    })?;
    parse_bytes(&bytes, bundle_dir)
}

/// Parses and validates the text of a `config.json` that lives in
/// `bundle_dir` (used to resolve a relative `root.path`).
///
/// Syntax and schema errors carry serde's line and column. Beyond the OCI
/// schema this rejects: a missing `process` or `root`, empty `process.args`,
/// a relative `process.cwd`, malformed `process.env` entries, duplicate or
/// inverted rlimits, an over-long hostname, mounts without destination,
/// NUL bytes in strings that reach system calls, and a `root.path` that is
/// not an existing directory.
pub fn parse_config(json: &str, bundle_dir: &Path) -> Result<SandboxSpec, SpecError> {
    parse_bytes(json.as_bytes(), bundle_dir)
}

fn parse_bytes(bytes: &[u8], bundle_dir: &Path) -> Result<SandboxSpec, SpecError> {
    let spec = deserialize_spec(bytes).map_err(|source| SpecError::Malformed {
        bundle: bundle_dir.to_path_buf(),
        source,
    })?;
    convert(&spec, bundle_dir)
}

/// Deserializes `bytes` as an OCI spec.
///
/// oci-spec insists on `process.user` and `process.cwd`, which runc (and
/// our [`SandboxSpec`] defaults) treat as optional. A first strict pass keeps
/// serde's line/column in errors; only when it fails on data is the
/// document re-read with those two defaults filled in.
fn deserialize_spec(bytes: &[u8]) -> Result<Spec, serde_json::Error> {
    let strict = match serde_json::from_slice::<Spec>(bytes) {
        Ok(spec) => return Ok(spec),
        Err(e) if e.is_data() => e,
        Err(e) => return Err(e),
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Err(strict);
    };
    if !fill_process_defaults(&mut value) {
        return Err(strict);
    }
    match serde_json::from_value::<Spec>(value) {
        Ok(spec) => Ok(spec),
        // The strict error was about a field we default: the lenient pass's
        // error (without position) is the one that describes the real problem.
        Err(lenient) if is_missing_defaulted_field(&strict) => Err(lenient),
        Err(_) => Err(strict),
    }
}

/// Inserts `"user": {}` and `"cwd": "/"` into a `process` object lacking
/// them. Returns whether anything was inserted.
fn fill_process_defaults(value: &mut serde_json::Value) -> bool {
    let Some(process) = value.get_mut("process").and_then(|p| p.as_object_mut()) else {
        return false;
    };
    let mut changed = false;
    if !process.contains_key("user") {
        process.insert("user".into(), serde_json::json!({}));
        changed = true;
    }
    if !process.contains_key("cwd") {
        process.insert("cwd".into(), serde_json::json!("/"));
        changed = true;
    }
    changed
}

fn is_missing_defaulted_field(e: &serde_json::Error) -> bool {
    let msg = e.to_string();
    msg.starts_with("missing field `user`") || msg.starts_with("missing field `cwd`")
}

/// Turns a parsed spec into a [`SandboxSpec`], applying defaults and checks.
fn convert(spec: &Spec, bundle_dir: &Path) -> Result<SandboxSpec, SpecError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| SpecError::field("process", "is required"))?;

    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(SpecError::field("process.args", "must not be empty"));
    }
    if args.first().is_some_and(String::is_empty) {
        return Err(SpecError::field("process.args[0]", "must not be empty"));
    }
    for (i, arg) in args.iter().enumerate() {
        no_nul(&format!("process.args[{i}]"), arg)?;
    }

    let env = process.env().clone().unwrap_or_default();
    for (i, var) in env.iter().enumerate() {
        check_env(i, var)?;
    }

    let cwd = path_string(process.cwd());
    no_nul("process.cwd", &cwd)?;
    if !cwd.starts_with('/') {
        return Err(SpecError::field(
            "process.cwd",
            format!("{cwd:?} must be an absolute path"),
        ));
    }

    let user = process.user();
    let rlimits = convert_rlimits(process.rlimits().as_deref().unwrap_or_default())?;

    let hostname = match spec.hostname().as_deref() {
        None | Some("") => DEFAULT_HOSTNAME.to_owned(),
        Some(h) => h.to_owned(),
    };
    no_nul("hostname", &hostname)?;
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(SpecError::field(
            "hostname",
            format!("is longer than {MAX_HOSTNAME_LEN} bytes"),
        ));
    }

    let root_cfg = spec
        .root()
        .as_ref()
        .ok_or_else(|| SpecError::field("root", "is required"))?;
    let root = resolve_root(root_cfg.path(), bundle_dir)?;

    let mounts = spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, m)| convert_mount(i, m))
        .collect::<Result<Vec<_>, _>>()?;

    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let memory_limit_bytes = resources
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .and_then(|limit| u64::try_from(limit).ok())
        .filter(|&limit| limit > 0);
    let cpu_limit = resources.and_then(|r| r.cpu().as_ref()).and_then(|cpu| {
        let quota = cpu.quota().filter(|&q| q > 0)?;
        let period = cpu.period().filter(|&p| p > 0)?;
        // Both are microsecond counts far below 2^53 in practice; the
        // rounding of huge values is harmless for a ratio.
        Some(quota as f64 / period as f64)
    });

    let annotations = spec
        .annotations()
        .as_ref()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();

    Ok(SandboxSpec {
        args,
        env,
        cwd,
        hostname,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        rlimits,
        root,
        root_readonly: root_cfg.readonly().unwrap_or(false),
        terminal: process.terminal().unwrap_or(false),
        memory_limit_bytes,
        cpu_limit,
        mounts,
        annotations,
    })
}

/// A path from `config.json` as a string. JSON strings are UTF-8, so the
/// conversion is lossless in practice.
fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn no_nul(field: &str, value: &str) -> Result<(), SpecError> {
    if value.contains('\0') {
        return Err(SpecError::field(field, "must not contain a NUL byte"));
    }
    Ok(())
}

/// runc's checks on one `process.env` entry: `K=V`, `K` non-empty, no NUL.
fn check_env(index: usize, var: &str) -> Result<(), SpecError> {
    let field = format!("process.env[{index}]");
    no_nul(&field, var)?;
    match var.split_once('=') {
        None => Err(SpecError::field(field, format!("{var:?} lacks '='"))),
        Some(("", _)) => Err(SpecError::field(
            field,
            format!("{var:?} has an empty name"),
        )),
        Some(_) => Ok(()),
    }
}

fn convert_rlimits(list: &[oci_spec::runtime::PosixRlimit]) -> Result<Vec<Rlimit>, SpecError> {
    let mut out: Vec<Rlimit> = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let resource = RlimitResource::from(r.typ());
        let field = format!("process.rlimits[{i}]");
        if out.iter().any(|prev| prev.resource == resource) {
            return Err(SpecError::field(field, format!("duplicates {resource}")));
        }
        let (soft, hard) = (r.soft(), r.hard());
        if soft > hard {
            return Err(SpecError::field(
                field,
                format!("({resource}) soft limit {soft} exceeds hard limit {hard}"),
            ));
        }
        out.push(Rlimit {
            resource,
            soft,
            hard,
        });
    }
    Ok(out)
}

/// Joins `root.path` onto the bundle (an absolute path replaces it),
/// canonicalizes it and checks that it is a directory.
fn resolve_root(path: &Path, bundle_dir: &Path) -> Result<PathBuf, SpecError> {
    if path.as_os_str().is_empty() {
        return Err(SpecError::field("root.path", "must not be empty"));
    }
    let joined = bundle_dir.join(path);
    let canonical = joined
        .canonicalize()
        .map_err(|source| SpecError::RootUnresolvable {
            path: joined.clone(),
            source,
        })?;
    let is_dir = fs::metadata(&canonical)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    if !is_dir {
        return Err(SpecError::RootNotDirectory { path: canonical });
    }
    Ok(canonical)
}

fn convert_mount(index: usize, m: &oci_spec::runtime::Mount) -> Result<Mount, SpecError> {
    let field = |name: &str| format!("mounts[{index}].{name}");
    let destination = path_string(m.destination());
    if destination.is_empty() {
        return Err(SpecError::field(field("destination"), "must not be empty"));
    }
    no_nul(&field("destination"), &destination)?;
    if !destination.starts_with('/') {
        log::warn!("config.json: mounts[{index}].destination {destination:?} is not absolute");
    }
    let source = m.source().as_deref().map(path_string);
    if let Some(source) = &source {
        no_nul(&field("source"), source)?;
    }
    Ok(Mount {
        destination,
        typ: m.typ().clone(),
        source,
        options: m.options().clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
