#!/usr/bin/env bash
# Build ringfence, put a static C program into a fresh OCI bundle, and run it
# sandboxed. Needs only gcc with a static libc (Debian: gcc libc6-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bundle=$(mktemp -d /tmp/ringfence-quickstart.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin"
gcc -static -O2 -o "$bundle/rootfs/bin/hello" examples/hello.c
(cd "$bundle" && "$OLDPWD/target/release/ringfence" spec)
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
cfg = json.load(open(path))
cfg["process"]["args"] = ["/bin/hello", "one", "two"]
json.dump(cfg, open(path, "w"), indent=2)
PY
exec target/release/ringfence --root "$bundle/state" run --bundle "$bundle" quickstart "$@"
