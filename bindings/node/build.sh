#!/bin/sh
# Builds the Node addon without the napi CLI or any npm package: cargo builds the cdylib and
# this script copies it next to index.js as infrapilot.node, the name index.js loads.
#
#   bindings/node/build.sh            # release build (what the tests and benchmark use)
#   PROFILE=debug bindings/node/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-$root/target}
case "$profile" in
  release) cargo build --manifest-path "$root/Cargo.toml" -p infrapilot-node --release ;;
  *) cargo build --manifest-path "$root/Cargo.toml" -p infrapilot-node ;;
esac
case "$(uname -s)" in
  Darwin) lib=libinfrapilot_node.dylib ;;
  *) lib=libinfrapilot_node.so ;;
esac
# Copy to a temporary name and rename, so a running process never sees a half-written addon.
cp "$target/$profile/$lib" "$here/infrapilot.node.tmp"
mv "$here/infrapilot.node.tmp" "$here/infrapilot.node"
echo "built $here/infrapilot.node ($profile)"
