#!/bin/sh
# Per-decision overhead of the Python and Node bindings over Rust: the same policy set
# (bindings/fixtures/policies.json) and resources, each timed in a loop of 200 000 decisions.
# Needs the Python package installed (pip install ./bindings/python) and the Node addon built
# (bindings/node/build.sh); both are release builds.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cargo run --quiet --release --manifest-path "$root/Cargo.toml" -p infrapilot-sdk --example bench_decisions
python3 "$here/bench.py"
node "$here/bench.js"
