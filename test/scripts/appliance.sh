#!/usr/bin/env bash
# appliance.sh installs what the appliance tests (make appliance-test) run
# besides Go: skopeo and umoci (to read and unpack the image as a container
# runtime would), and iproute2, iptables and util-linux (unshare) for the
# air-gap boot test's namespaces. Debian packages, installed only when
# missing (needs root and apt); a second run does nothing.
set -euo pipefail

log() { echo "appliance.sh: $*" >&2; }

missing=()
for pair in skopeo:skopeo umoci:umoci ip:iproute2 iptables:iptables unshare:util-linux; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	log "missing ${missing[*]} and installing needs root: apt-get install -y ${missing[*]}"
	exit 1
fi
log "installing ${missing[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
