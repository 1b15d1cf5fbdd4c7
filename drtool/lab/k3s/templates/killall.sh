#!/bin/sh
# Stops every K3s service on this node and kills what is left of K3s.
# Lab edition: there are no containers, CNI links or iptables rules to clean up (lab nodes
# share the host's network namespace, so touching those would break the host).
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"
R="${DRTOOL_LAB_ROOT:-}"
K3S_BIN="$R@BIN_DIR@/k3s"

set -x

for service in "$R@SYSTEMD_DIR@"/k3s*.service; do
    [ -s "$service" ] && systemctl stop "$(basename "$service")"
done

{ set +x; } 2>/dev/null
k3s_pids() {
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$pid" = "$$" ] && continue
        tr '\000' '\n' < "$d/cmdline" 2>/dev/null | grep -qxF "$K3S_BIN" && echo "$pid"
    done
}
pids=$(k3s_pids)
set -x
if [ -n "$pids" ]; then
    kill -TERM $pids 2>/dev/null
    sleep 0.2
    kill -KILL $(k3s_pids) 2>/dev/null
fi

rm -rf "$R/run/k3s" "$R/run/flannel"
