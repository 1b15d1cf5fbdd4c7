#!/bin/sh
# Removes K3s (@SYSTEM_NAME@) from this node. Leaves /etc/rancher/node/password and
# everything outside K3s's own directories (for example /mnt), as K3s's uninstall does.
set -x
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=K3S_DATA_DIR "$0" "$@"
R="${DRTOOL_LAB_ROOT:-}"

# k3s-io/k3s install.sh (create_uninstall, as get.k3s.io serves it for v1.31): the data dir
# comes from the environment of the uninstall run, never from the unit or --data-dir.
K3S_DATA_DIR=${K3S_DATA_DIR:-/var/lib/rancher/k3s}

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

# As clean_mounted_directory in k3s-io/k3s install.sh: a directory that is (or holds) a mount
# point is emptied entry by entry, keeping only the mount points (and the way to them).
clean_mounted_directory() {
    if ! grep -q " $1" /proc/mounts; then
        rm -rf "$1"
        return 0
    fi
    for path in "$1"/*; do
        if [ -d "$path" ]; then
            if grep -q " $path" /proc/mounts; then
                clean_mounted_directory "$path"
            else
                rm -rf "$path"
            fi
        else
            rm -f "$path"
        fi
    done
}

rm -rf "$R/etc/rancher/k3s"
rm -rf "$R/run/k3s"
rm -rf "$R/run/flannel"
clean_mounted_directory "$R${K3S_DATA_DIR}"
rm -rf "$R/var/lib/kubelet"
rm -f "$R@BIN_DIR@/k3s"
rm -f "$R@BIN_DIR@/k3s-killall.sh"
