//! `BootParams::decode`, `ExitStatus::decode` and `ExecRequest::decode` on
//! any bytes: never panic, and what they accept round-trips through
//! `encode`.

#![no_main]

use guest_kernel::boot::ExecRequest;
use guest_kernel::{BootParams, ExitStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = BootParams::decode(data) {
        let enc = p.encode();
        // The encoding is canonical: the decoder accepts nothing else.
        assert_eq!(enc, data);
        assert_eq!(BootParams::decode(&enc), Ok(p));
    }
    if let Ok(x) = ExecRequest::decode(data) {
        let enc = x.encode();
        assert_eq!(enc, data);
        assert_eq!(ExecRequest::decode(&enc), Ok(x));
    }
    if let Ok(st) = ExitStatus::decode(data) {
        let _ = st.code();
        let enc = st.encode();
        assert_eq!(ExitStatus::decode(&enc), Ok(st));
    }
});
