#!/bin/sh
# Removes K3s (@SYSTEM_NAME@) from this node. Leaves /etc/rancher/node/password and
# everything outside K3s's own directories (for example /mnt), as K3s's uninstall does.
set -x
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"
R="${DRTOOL_LAB_ROOT:-}"

# Lab only: a scenario's ssh_drop plays a flaky link here, mid-uninstall.
[ -x "$R@BIN_DIR@/k3s" ] && "$R@BIN_DIR@/k3s" lab-fault ssh-drop uninstall >/dev/null 2>&1 || true
"$R@BIN_DIR@/k3s-killall.sh"

if command -v systemctl; then
    systemctl disable @SYSTEM_NAME@
    systemctl reset-failed @SYSTEM_NAME@
    systemctl daemon-reload
fi

rm -f "$R@SYSTEMD_DIR@/@SYSTEM_NAME@.service"
rm -f "$R@SYSTEMD_DIR@/@SYSTEM_NAME@.service.env"

remove_uninstall() {
    rm -f "$R@BIN_DIR@/@SYSTEM_NAME@-uninstall.sh"
}
trap remove_uninstall EXIT

if (ls "$R@SYSTEMD_DIR@"/k3s*.service || ls "$R"/etc/init.d/k3s*) >/dev/null 2>&1; then
    set +x; echo 'Additional k3s services installed, skipping uninstall of k3s'; set -x
    exit
fi

for cmd in kubectl crictl ctr; do
    if [ -L "$R@BIN_DIR@/$cmd" ]; then
        rm -f "$R@BIN_DIR@/$cmd"
    fi
done

rm -rf "$R/etc/rancher/k3s"
rm -rf "$R/run/k3s"
rm -rf "$R/run/flannel"
rm -rf "$R/var/lib/rancher/k3s"
rm -rf "$R/var/lib/kubelet"
rm -f "$R@BIN_DIR@/k3s"
rm -f "$R@BIN_DIR@/k3s-killall.sh"
