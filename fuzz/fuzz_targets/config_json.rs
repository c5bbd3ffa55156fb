//! `resources::parse_config` on any UTF-8 text: never panics.
//!
//! The bundle has a `rootfs` directory, so documents whose `root.path` is
//! `rootfs` get past root resolution to the mounts and the rest.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn bundle() -> &'static PathBuf {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("ringfence-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("create the fuzz bundle");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = std::str::from_utf8(data) {
        if let Ok(spec) = resources::parse_config(json, bundle()) {
            assert!(!spec.args.is_empty() && !spec.args[0].is_empty());
            assert!(spec.cwd.starts_with('/'));
            assert!(spec.hostname.len() <= resources::MAX_HOSTNAME_LEN);
        }
    }
});
