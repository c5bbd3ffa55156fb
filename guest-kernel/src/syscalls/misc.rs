//! uname, getrandom.

use alloc::vec;

use super::Args;
use crate::abi::linux::utsname_bytes;
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::Platform;

/// The kernel release the application sees.
pub const UTS_RELEASE: &[u8] = b"6.1.0";
pub const UTS_VERSION: &[u8] = b"#1 SMP ringfence";

/// uname(2).
pub fn sys_uname<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let host = k.hostname.clone();
    let img = utsname_bytes([
        b"Linux",
        &host,
        UTS_RELEASE,
        UTS_VERSION,
        b"x86_64",
        b"(none)",
    ]);
    k.copy_out(a[0], &img)?;
    Ok(0)
}

/// getrandom(2).
pub fn sys_getrandom<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const GRND_NONBLOCK: u64 = 1;
    const GRND_RANDOM: u64 = 2;
    const GRND_INSECURE: u64 = 4;
    if a[2] & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || a[2] & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE)
    {
        return Err(Errno::EINVAL);
    }
    let len = a[1].min(33_554_431) as usize;
    let mut done = 0;
    let mut buf = vec![0u8; len.min(64 * 1024)];
    while done < len {
        let n = (len - done).min(buf.len());
        k.plat.random(&mut buf[..n]);
        k.copy_out(a[0] + done as u64, &buf[..n])?;
        done += n;
    }
    Ok(done as u64)
}
