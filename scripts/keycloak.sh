#!/bin/sh
# Fetch the pinned Keycloak server distribution (tests/peers/keycloak/dist.env) from Maven
# Central, check its SHA-256, unpack it into a cache outside the tree and build its optimized
# server image once (dev-mem database, local caches), so a test run starts it in seconds
# instead of re-augmenting it.  Prints the distribution's directory.  Quick when it is there.
#   MLAUTH_RIG_CACHE  the cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/mlauth-rig)
set -eu
cd "$(dirname "$0")/.."
. tests/peers/keycloak/dist.env
cache=${MLAUTH_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlauth-rig}
dist="$cache/keycloak-$KEYCLOAK_VERSION"
stamp="$dist/.mlauth-ready"
if [ -f "$stamp" ]; then
	echo "$dist"
	exit 0
fi
mkdir -p "$cache"
# Two `make deps` at once: the second waits and then finds it done.
exec 9>"$cache/.lock"
flock 9
if [ -f "$stamp" ]; then
	echo "$dist"
	exit 0
fi
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "deps: fetching Keycloak $KEYCLOAK_VERSION (Maven Central)" >&2
mvn -q -B -Dstyle.color=never dependency:copy \
	-Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
	-DoutputDirectory="$work" >&2
zip="$work/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
echo "$KEYCLOAK_SHA256  $zip" | sha256sum -c --quiet - >&2 || {
	echo "deps: the Keycloak distribution does not match its pinned SHA-256" >&2
	exit 1
}
unzip -q "$zip" -d "$work/unpacked"
rm -f "$zip"
echo "deps: building Keycloak's server image (once, about a minute)" >&2
# The build options every test run starts with (`start --optimized`): an in-memory H2 database,
# and local caches, so the server never looks for cluster peers on the network.
"$work/unpacked/keycloak-$KEYCLOAK_VERSION/bin/kc.sh" build --db=dev-mem --cache=local \
	>"$work/build.log" 2>&1 || {
	cat "$work/build.log" >&2
	exit 1
}
touch "$work/unpacked/keycloak-$KEYCLOAK_VERSION/.mlauth-ready"
rm -rf "$dist"
mv "$work/unpacked/keycloak-$KEYCLOAK_VERSION" "$dist"
echo "$dist"
