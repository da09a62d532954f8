#!/usr/bin/env bash
# `scripts/fresh-copy.sh DEST`: copies this checkout's working tree (tracked and new files, none that
# .gitignore names: no node_modules, no dist) into DEST, which it empties first.
set -euo pipefail
dest=$1
cd "$(dirname "$0")/.."
rm -rf "$dest" && mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
  [ -e "$file" ] && cp --parents -p "$file" "$dest"
done
