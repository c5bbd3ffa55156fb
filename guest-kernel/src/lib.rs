//! The sentry: ringfence's Linux-compatible application kernel.
//!
//! It is a `no_std` + `alloc` library written against [`platform::Platform`].
//! The KVM platform links it into the ring-0 guest image; the ptrace
//! platform links it into the sandbox process. Its syscall logic is safe
//! Rust and never trusts the application.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod abi;
pub mod boot;
pub mod fs;
pub mod kernel;
pub mod loader;
pub mod mm;
pub mod platform;
pub mod sched;
pub mod syscalls;
pub mod task;

pub use boot::{BootParams, ExecRequest, ExitStatus};
pub use sched::run;
