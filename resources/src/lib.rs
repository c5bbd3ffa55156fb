//! Configuration for ringfence, with no KVM in it.
//!
//! - [`load_bundle`] / [`parse_config`]: an OCI bundle's `config.json`
//!   (parsed with oci-spec) turned into a validated, platform-neutral
//!   [`SandboxSpec`].
//! - [`default_spec_json`]: the example `config.json` of `ringfence spec`.
//! - [`validate_container_id`]: runc's container-id rule.
//! - [`state`]: runc-compatible container state files.
//!
//! Nothing here panics on any input: every problem is a [`SpecError`] (or a
//! [`state::StateError`]) with a one-line message naming the file and field.

mod default_spec;
mod error;
mod id;
mod rlimit;
mod spec;
pub mod state;

#[cfg(test)]
mod testutil;

pub use default_spec::{default_spec_json, DEFAULT_HOSTNAME, DEFAULT_OCI_VERSION};
pub use error::SpecError;
pub use id::{validate_container_id, MAX_CONTAINER_ID_LEN};
pub use rlimit::{Rlimit, RlimitResource};
pub use spec::{load_bundle, parse_config, Mount, SandboxSpec, MAX_HOSTNAME_LEN};
