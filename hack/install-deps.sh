#!/usr/bin/env bash
# Installs the system packages kubectl-stage's tests and demo use, if they are
# missing: etcd (Debian's etcd-server) for the test control plane; OpenVPN,
# WireGuard tools, wireguard-go, iproute2, ping and iperf3 for the VPN tests in
# network namespaces; containerd, runc, the CNI plugins, iptables, conntrack
# and socat for the real-node tests (kubelet and kubeadm need them); the
# linter of the rendered join bundle (shellcheck); headless Chromium for the
# dashboard's test. Idempotent; needs root (or sudo) only when something is
# missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have etcd        || need+=(etcd-server)
have openvpn     || need+=(openvpn)
have wg          || need+=(wireguard-tools)
have wireguard-go || need+=(wireguard-go)
have ip          || need+=(iproute2)
have ping        || need+=(iputils-ping)
have iperf3      || need+=(iperf3)
have containerd  || need+=(containerd)
have runc        || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have shellcheck  || need+=(shellcheck)
have conntrack   || need+=(conntrack)
have iptables    || need+=(iptables)
have nft         || need+=(nftables)
have socat       || need+=(socat)
have jq          || need+=(jq)
have chromium    || need+=(chromium)     # renders the dashboard in its test
have make        || need+=(make)
have git         || need+=(git)

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo; then sudo="sudo"; else
    echo "missing packages ${need[*]}: run this script as root (apt-get install needs it)" >&2
    exit 1
  fi
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends keeps wireguard-tools from pulling in a kernel.
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts etcd as a service on install; the tests run their own.
# Likewise containerd: every test machine runs its own.
for svc in etcd containerd; do
  if have systemctl && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "system packages: installed ${need[*]}"
