#!/usr/bin/env bash
# deps.sh - install the Debian packages herald needs (only those missing); run as root.
# usage: scripts/deps.sh [build] [servers] [check]   (no argument: all three)
set -euo pipefail

build_pkgs="gcc make autoconf automake libtool pkg-config librabbitmq-dev libmariadb-dev
	libjson-c-dev libcurl4-openssl-dev libconfig-dev libev-dev libssl-dev libmicrohttpd-dev"
server_pkgs="rabbitmq-server mariadb-server mariadb-client tzdata amqp-tools procps iproute2 openssl"
check_pkgs="cppcheck clang clang-tidy libclang-rt-14-dev valgrind python3 jq python3-aiosmtpd python3-h2 python3-cryptography curl"

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(build servers check)
want=""
for g in "${groups[@]}"; do
	case $g in
	build) want="$want $build_pkgs" ;;
	servers) want="$want $server_pkgs" ;;
	check) want="$want $check_pkgs" ;;
	*) echo "deps.sh: unknown group '$g' (build, servers, check)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing; run as root to install them" >&2
	exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# Keep the packages' postinst scripts from starting the system's RabbitMQ and MariaDB: herald
# runs private ones (scripts/stack.sh). policy-rc.d exiting 101 denies every start; an existing
# one is put back afterwards.
policy=/usr/sbin/policy-rc.d saved=""
if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
restore() { if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi; }
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 755 "$policy"
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
