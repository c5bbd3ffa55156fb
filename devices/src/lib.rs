//! Host services that the sentry reaches through host calls.
//!
//! This is the gofer's role: the sentry holds opaque [`HostHandle`]s, never
//! host paths or fds, and every value it passes is checked here. Files are
//! opened beneath the container root with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so no path from the application can name a host
//! file outside it.

mod bind;
mod host;

pub use host::HostServices;
