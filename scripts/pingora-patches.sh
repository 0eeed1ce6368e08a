#!/usr/bin/env bash
# Lays out the Pingora crates strait patches (benches/README.md, "Pingora patches") in
# vendor/pingora/<crate>/, which Cargo.toml's [patch.crates-io] points at, and applies the
# project's own patch files to them. Pingora's source is never committed: it comes from
# cargo's own download of the published crates, into a git-ignored folder.
#
#   scripts/pingora-patches.sh        lay out (a no-op when the stamp matches)
#   FORCE=1 scripts/pingora-patches.sh   lay out again from scratch
#
# patches/<crate>/NNNN-<what>.patch are applied in name order with `patch -p1` inside the
# crate's folder; text before the first `---`/`diff` line (the rationale and the measured
# gain) is ignored by patch. The version is the one Cargo.toml pins for `pingora`; a Pingora
# upgrade is: change the version in Cargo.toml, rerun this script, refresh the patches that
# no longer apply. The stamp (version + hash of the patch files and of this script) makes a
# rerun a no-op and a changed patch re-lay the folder.
#
# Not hooked up at the moment: the issue-20 patch set missed its gate and was removed
# (benches/README.md). Commit 4135dfe holds it: its patches/, Cargo.toml's [patch.crates-io]
# and the calls from scripts/setup.sh, the Dockerfile, benches/run.sh and benches/callgrind.sh.
# With no patches/ this script only removes vendor/pingora/.
#
# It must not depend on the strait workspace resolving (cargo fails there while a [patch]
# path is missing), so the download goes through a throwaway manifest in a temp directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PATCHES=$ROOT/patches
DEST=$ROOT/vendor/pingora

die() {
  echo "pingora-patches: $*" >&2
  exit 1
}

VERSION=$(sed -n 's/^pingora = {[^}]*version = "=\([0-9][0-9.]*\)".*/\1/p' Cargo.toml)
[ -n "$VERSION" ] || die "no pinned version (pingora = { version = \"=X.Y.Z\" ... }) in Cargo.toml"

crates=()
if [ -d "$PATCHES" ]; then
  for dir in "$PATCHES"/*/; do
    [ -d "$dir" ] && crates+=("$(basename "$dir")")
  done
fi
if [ ${#crates[@]} -eq 0 ]; then
  # No patches: nothing to lay out (and Cargo.toml should have no [patch.crates-io] paths).
  rm -rf "$DEST"
  exit 0
fi
for crate in "${crates[@]}"; do
  case $crate in
  pingora | pingora-*) ;;
  *) die "patches/$crate: not a Pingora crate" ;;
  esac
done

stamp=$(
  {
    echo "$VERSION"
    cat "$0"
    (cd "$PATCHES" && find . -type f -name '*.patch' | LC_ALL=C sort | while read -r f; do
      echo "$f"
      cat "$f"
    done)
  } | sha256sum | cut -d' ' -f1
)
if [ -z "${FORCE:-}" ] && [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$stamp" ]; then
  exit 0
fi

command -v cargo >/dev/null || die "cargo not found"
command -v patch >/dev/null || die "patch not found (apt-get install patch)"

# cargo's own download of the published crates, through a throwaway manifest.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
{
  printf '[package]\nname = "strait-pingora-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
  printf '[lib]\npath = "lib.rs"\n\n[dependencies]\n'
  for crate in "${crates[@]}"; do printf '%s = "=%s"\n' "$crate" "$VERSION"; done
  printf '\n[workspace]\n'
} >"$TMP/Cargo.toml"
: >"$TMP/lib.rs"
(cd "$TMP" && cargo fetch --quiet) || die "cargo fetch of Pingora $VERSION failed"

CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
rm -rf "$DEST"
mkdir -p "$DEST"
for crate in "${crates[@]}"; do
  archive=$(ls "$CARGO_HOME"/registry/cache/*/"$crate-$VERSION.crate" 2>/dev/null | head -1)
  [ -n "$archive" ] || die "$crate-$VERSION.crate not in $CARGO_HOME/registry/cache after cargo fetch"
  mkdir -p "$DEST/$crate"
  tar -xzf "$archive" -C "$DEST/$crate" --strip-components=1
  for p in "$PATCHES/$crate"/*.patch; do
    [ -e "$p" ] || continue
    name=${p#"$ROOT"/}
    if ! out=$(patch -p1 --forward --batch --no-backup-if-mismatch -d "$DEST/$crate" <"$p" 2>&1); then
      rm -rf "$DEST"
      printf '%s\n' "$out" >&2
      die "$name does not apply to $crate $VERSION"
    fi
    echo "pingora-patches: applied $name"
  done
done
echo "$stamp" >"$DEST/.stamp"
echo "pingora-patches: Pingora $VERSION laid out in ${DEST#"$ROOT"/} (${crates[*]})"
