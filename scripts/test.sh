#!/usr/bin/env bash
# Install what the tests need, then run the project's checks and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
[ -x /bin/busybox ] || need+=(busybox-static)
# runc: the lifecycle tests compare `state` output with it.
command -v runc >/dev/null || need+=(runc)
# containerd and ctr: tests/tests/containerd.rs runs `ctr run` with ringfence.
command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    else
        echo "missing packages: ${need[*]} (run as root or install them)" >&2
        exit 1
    fi
fi
if [ ! -e /dev/kvm ]; then
    echo "WARNING: /dev/kvm is absent: KVM tests will be SKIPPED (loudly)" >&2
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --release --quiet
cargo test --workspace --release 2>&1 | tee /tmp/ringfence-test.log
# cargo test exits non-zero on failure; pipefail carries it through tee.
