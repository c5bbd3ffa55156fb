//! KVM vCPUs for the sentry: the embedded ring-0 image, the VM and its
//! vCPU in long mode (PVM flavour), the run loop with exit dispatch, and
//! the host-call queue's I/O thread.

pub mod hostcall;
pub mod image;
pub mod layout;
pub mod signals;
pub mod vm;

/// The KVM platform ABI shared with the image.
pub use guest_kernel::abi::hostcall as abi;

pub use hostcall::{HostCallServer, SharedHost};
pub use signals::{SendError, SignalSender};
pub use vm::{is_pvm, ExitStats, KvmVm, Pauser, RunReport};

/// The sentry image (ELF), built from `guest-kernel/image` by `build.rs`.
pub static SENTRY_IMAGE: &[u8] = include_bytes!(env!("RINGFENCE_SENTRY_IMAGE"));

/// Why the VM could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// A KVM ioctl failed.
    #[error("{what} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Kvm { what: &'static str, errno: i32 },
    /// `/dev/kvm` is not PVM.
    #[error("/dev/kvm is not PVM (signature MSR 0x4b564d11 missing): the hardware flavour is not supported yet")]
    NotPvm,
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    /// The image is not a valid sentry image.
    #[error("corrupt sentry image: {0}")]
    BadImage(&'static str),
    /// linux-loader failed.
    #[error("loading the sentry image failed: {0}")]
    Load(String),
    /// The boot parameter blob is too large.
    #[error("boot parameters too large: {0} bytes")]
    ParamsTooLarge(usize),
    /// The sentry reported a panic or a kernel-mode fault.
    #[error("the sentry crashed: {0}")]
    GuestPanic(String),
    /// The sentry's exit report is not valid.
    #[error("the sentry's exit report is {0}")]
    BadExitReport(&'static str),
    /// The guest triple-faulted.
    #[error("the guest shut down (triple fault): {0}")]
    GuestShutdown(String),
    /// Another vCPU ended the VM (internal to the run loops).
    #[error("stopped by another vCPU")]
    Stopped,
    /// The sentry did not come up in time.
    #[error("the sentry did not boot within {0:?}: {1}")]
    BootTimeout(std::time::Duration, String),
    /// An exit the VMM does not handle.
    #[error("unexpected VM exit {0}: {1}")]
    UnexpectedExit(String, String),
    /// A host resource.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
}
