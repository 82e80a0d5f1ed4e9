#!/bin/sh
# Install what building and testing mlauth needs: Debian 12 packages, the test peers
# from package-lock.json, and the Keycloak server distribution from Maven Central
# (scripts/keycloak.sh).  Quiet and quick when all is there.
set -eu
cd "$(dirname "$0")/.."

# Build: compilers and libraries.  Tests: the keyring and its tools, shells
# for the completions, tmux for terminal tests, libFuzzer's runtime,
# valgrind; bench: GNU time, strace and the peers (gh, oidc-agent).
pkgs="build-essential pkg-config clang libcurl4-openssl-dev libjansson-dev
libsecret-1-dev libmicrohttpd-dev libglib2.0-dev libkeyutils-dev libqrencode-dev libcmocka-dev
libjwt-dev libssl-dev
gnome-keyring libsecret-tools dbus-daemon dbus-bin keyutils valgrind man-db
libclang-rt-14-dev tmux zsh fish openssl curl time strace gh oidc-agent oidc-agent-cli zbar-tools unzip"
# Node may come from elsewhere (NodeSource ships npm inside nodejs); only ask
# Debian for what is really missing.
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
# The Keycloak server of the e2e tests runs on Java 17 or later and comes from Maven Central.
command -v java >/dev/null 2>&1 || pkgs="$pkgs openjdk-17-jre-headless"
command -v mvn >/dev/null 2>&1 || pkgs="$pkgs maven"

missing=
for p in $pkgs; do
	case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "mlauth: missing packages; install them as root with:" >&2
		echo "  sudo apt-get install -y$missing" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# npm ci only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] ||
   [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "deps: npm ci (test peers)"
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# The Keycloak server distribution, pinned and checked, in a cache outside the tree.
sh scripts/keycloak.sh >/dev/null
