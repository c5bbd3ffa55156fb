//! The error type for bundle loading, `config.json` validation and container ids.

use std::io;
use std::path::PathBuf;

/// Why a bundle, a `config.json` or a container id was rejected.
///
/// Every message is one lowercase line that names the file or the field at
/// fault, so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `bundle/config.json` does not exist.
    #[error("config.json not found in bundle {}: {source}", .bundle.display())]
    ConfigNotFound {
        /// The bundle directory that was searched.
        bundle: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// `bundle/config.json` exists but could not be read.
    #[error("cannot read config.json in bundle {}: {source}", .bundle.display())]
    ConfigUnreadable {
        /// The bundle directory.
        bundle: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// `config.json` is not valid JSON or does not match the OCI schema. The
    /// serde message carries the line and column.
    #[error("malformed config.json in {}: {source}", .bundle.display())]
    Malformed {
        /// The bundle directory.
        bundle: PathBuf,
        /// The parser error, with line and column when known.
        source: serde_json::Error,
    },

    /// A field of `config.json` is missing or has a value we reject.
    #[error("config.json: {field} {reason}")]
    InvalidField {
        /// Dotted path of the field, e.g. `process.args`.
        field: String,
        /// What is wrong with it, e.g. `must not be empty`.
        reason: String,
    },

    /// `root.path` (resolved against the bundle) could not be resolved.
    #[error("config.json: root.path {path:?} cannot be resolved: {source}")]
    RootUnresolvable {
        /// `root.path` joined onto the bundle directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// `root.path` exists but is not a directory.
    #[error("config.json: root.path {path:?} is not a directory")]
    RootNotDirectory {
        /// The canonical path that was found.
        path: PathBuf,
    },

    /// A container id breaks runc's naming rule.
    #[error("invalid container id {}: {reason}", shorten(.id))]
    InvalidContainerId {
        /// The rejected id, in full.
        id: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
}

impl SpecError {
    /// Builds an [`SpecError::InvalidField`].
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Quotes an id for an error message, cutting very long ones short so one bad
/// argument cannot flood the terminal.
fn shorten(id: &str) -> String {
    const MAX_CHARS: usize = 64;
    if id.chars().count() <= MAX_CHARS {
        format!("{id:?}")
    } else {
        let head: String = id.chars().take(MAX_CHARS).collect();
        format!("{head:?}... ({} bytes)", id.len())
    }
}
