//! Builds the ring-0 sentry image (`guest-kernel/image`) with a nested cargo
//! and embeds it (see `vcpu::SENTRY_IMAGE`).
//!
//! The image is `#![no_std]`/`#![no_main]` but built for the host target
//! against the prebuilt `core`/`alloc` (there is no `x86_64-unknown-none`
//! here): static relocation model, kernel code model, no start files, our
//! own linker script. The image crate is excluded from the workspace so
//! that its `panic=abort` and `#[panic_handler]` never meet `cargo test`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("vcpu lives in the workspace root");
    let image_dir = root.join("guest-kernel/image");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out_dir.join("sentry-image");

    rerun_if_changed_tree(&image_dir.join("src"));
    println!(
        "cargo:rerun-if-changed={}",
        image_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        image_dir.join("linker.ld").display()
    );
    rerun_if_changed_tree(&root.join("guest-kernel/src"));
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-kernel/Cargo.toml").display()
    );
    println!("cargo:rerun-if-env-changed=RINGFENCE_IMAGE_FEATURES");

    let linker_script = image_dir.join("linker.ld");
    let flags = [
        "-Cpanic=abort".to_string(),
        "-Crelocation-model=static".to_string(),
        "-Ccode-model=kernel".to_string(),
        "-Cforce-frame-pointers=yes".to_string(),
        "-Clink-arg=-nostartfiles".to_string(),
        "-Clink-arg=-nostdlib".to_string(),
        "-Clink-arg=-static".to_string(),
        "-Clink-arg=-Wl,--no-dynamic-linker".to_string(),
        "-Clink-arg=-Wl,--build-id=none".to_string(),
        format!("-Clink-arg=-Wl,-T,{}", linker_script.display()),
    ];

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&image_dir)
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg("x86_64-unknown-linux-gnu")
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(image_dir.join("Cargo.toml"));
    if let Ok(features) = env::var("RINGFENCE_IMAGE_FEATURES") {
        cmd.arg("--features").arg(features);
    }
    // The parent's flags and target settings must not leak into the image
    // build (a coverage or sanitizer RUSTFLAGS would break it).
    for var in [
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_PROFILE_RELEASE_LTO",
        "CARGO_PROFILE_RELEASE_PANIC",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    // The nested build must not contend for the parent's jobserver tokens
    // forever; one job at a time keeps a 2-core machine responsive.
    cmd.env("CARGO_BUILD_JOBS", "2");

    let status = cmd
        .status()
        .expect("failed to run the nested cargo for the sentry image");
    assert!(
        status.success(),
        "building the sentry image (guest-kernel/image) failed: {status}"
    );

    let elf = target_dir.join("x86_64-unknown-linux-gnu/release/sentry-image");
    assert!(elf.exists(), "sentry image not found at {}", elf.display());
    let embedded = out_dir.join("sentry-image.elf");
    std::fs::copy(&elf, &embedded).expect("copy the sentry image into OUT_DIR");
    println!(
        "cargo:rustc-env=RINGFENCE_SENTRY_IMAGE={}",
        embedded.display()
    );
}

/// `rerun-if-changed` on every file under `dir` (directories alone only
/// catch additions and removals).
fn rerun_if_changed_tree(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rerun_if_changed_tree(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
