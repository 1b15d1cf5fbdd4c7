#!/bin/sh
# K3s installer for lab nodes (air-gapped install of the simulated K3s).
#
# Configured by environment, like the upstream script:
#   INSTALL_K3S_SKIP_DOWNLOAD=true  use the k3s binary already in the bin dir (required here:
#                                   lab nodes have no network access)
#   INSTALL_K3S_VERSION             release to install (pinned)
#   INSTALL_K3S_EXEC                command and flags, e.g. "server --disable traefik"
#   INSTALL_K3S_BIN_DIR             default /usr/local/bin
#   INSTALL_K3S_SYSTEMD_DIR         default /etc/systemd/system
#   INSTALL_K3S_NAME                service name suffix (k3s-<name>)
#   INSTALL_K3S_SKIP_ENABLE / INSTALL_K3S_SKIP_START / INSTALL_K3S_SYMLINK=skip
#   INSTALL_K3S_FORCE_RESTART=true  restart the service even when nothing changed
#   K3S_URL                         join a server (then the command defaults to agent)
#   K3S_TOKEN / K3S_TOKEN_FILE      cluster token (required with K3S_URL)
#   K3S_*                           every K3S_ variable goes to the unit's .service.env (0600)
# Usage: curl ... | sh -s - [server|agent] [flags]   or   sh install.sh [server|agent] [flags]
set -e
set -o noglob

R="${DRTOOL_LAB_ROOT:-}"

info() { echo '[INFO] ' "$@"; }
warn() { echo '[WARN] ' "$@" >&2; }
fatal() { echo '[ERROR] ' "$@" >&2; exit 1; }

# Quote each argument for the unit file, one per continuation line.
quote_indent() {
    printf ' \\\n'
    for arg in "$@"; do
        printf '\t%s \\\n' "'$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'"
    done
}

escape() { printf '%s' "$@" | sed -e 's/\([][!#$%&()*;<=>?\_`{|}]\)/\\\1/g;'; }
quote() {
    for arg in "$@"; do
        printf "'%s' " "$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")"
    done
}

verify_system() {
    if [ -x "$R/sbin/openrc-run" ]; then
        fatal 'OpenRC is not available on lab nodes'
    fi
    if ! command -v systemctl >/dev/null 2>&1; then
        fatal 'Can not find systemd or openrc to use as a process supervisor for k3s'
    fi
}

setup_env() {
    case "$1" in
        (-*|"")
            if [ -z "${K3S_URL}" ]; then
                CMD_K3S=server
            else
                if [ -z "${K3S_TOKEN}" ] && [ -z "${K3S_TOKEN_FILE}" ]; then
                    fatal "Defaulted k3s exec command to 'agent' because K3S_URL is defined, but K3S_TOKEN or K3S_TOKEN_FILE is not defined."
                fi
                CMD_K3S=agent
            fi
            ;;
        (*)
            CMD_K3S=$1
            shift
            ;;
    esac
    if [ -n "${K3S_TOKEN_FILE}" ] && [ ! -f "$R${K3S_TOKEN_FILE}" ]; then
        fatal "Defined K3S_TOKEN_FILE (${K3S_TOKEN_FILE}) does not exist."
    fi
    CMD_K3S_EXEC="${CMD_K3S}$(quote_indent "$@")"

    if [ -n "${INSTALL_K3S_NAME}" ]; then
        SYSTEM_NAME=k3s-${INSTALL_K3S_NAME}
    elif [ "${CMD_K3S}" = server ]; then
        SYSTEM_NAME=k3s
    else
        SYSTEM_NAME=k3s-${CMD_K3S}
    fi
    valid_chars=$(printf '%s' "${SYSTEM_NAME}" | sed -e 's/[][!#$%&()*;<=>?\_`{|}/[:space:]]/^/g;')
    if [ "${SYSTEM_NAME}" != "${valid_chars}" ]; then
        fatal "Invalid characters for system name: ${SYSTEM_NAME}"
    fi

    if [ "$(id -u)" -ne 0 ]; then
        fatal "This script must run as root (sudo sh install.sh)"
    fi

    BIN_DIR="${INSTALL_K3S_BIN_DIR:-/usr/local/bin}"
    SYSTEMD_DIR="${INSTALL_K3S_SYSTEMD_DIR:-/etc/systemd/system}"
    SERVICE_K3S=${SYSTEM_NAME}.service
    FILE_K3S_SERVICE=${SYSTEMD_DIR}/${SERVICE_K3S}
    FILE_K3S_ENV=${SYSTEMD_DIR}/${SERVICE_K3S}.env
    KILLALL_K3S_SH=${BIN_DIR}/k3s-killall.sh
    UNINSTALL_K3S_SH=${BIN_DIR}/${SYSTEM_NAME}-uninstall.sh

    PRE_INSTALL_HASHES=$(get_installed_hashes)
}

# As k3s-io/k3s install.sh (get_installed_hashes, the script get.k3s.io serves for v1.31):
# the binary, unit and env file before and after decide whether the service is (re)started.
get_installed_hashes() {
    sha256sum "$R${BIN_DIR}/k3s" "$R${FILE_K3S_SERVICE}" "$R${FILE_K3S_ENV}" 2>&1 || true
}

download_and_verify() {
    if [ "${INSTALL_K3S_SKIP_DOWNLOAD}" = true ]; then
        info 'Skipping k3s download and verify'
        if [ ! -x "$R${BIN_DIR}/k3s" ]; then
            fatal "Executable k3s binary not found at ${BIN_DIR}/k3s"
        fi
        return
    fi
    # Lab nodes are offline: fail the way an offline machine does, without trying.
    if [ -n "${INSTALL_K3S_VERSION}" ]; then
        info "Using ${INSTALL_K3S_VERSION} as release"
        info "Downloading hash https://github.com/k3s-io/k3s/releases/download/${INSTALL_K3S_VERSION}/sha256sum-amd64.txt"
    else
        info "Finding release for channel ${INSTALL_K3S_CHANNEL:-stable}"
    fi
    fatal "Download failed: this node has no network access. Upload the k3s binary to ${BIN_DIR}/k3s and set INSTALL_K3S_SKIP_DOWNLOAD=true (air-gapped install)"
}

# As k3s-io/k3s install.sh setup_selinux: an air-gapped install (or a node without
# /usr/share/selinux) never installs the k3s-selinux RPM and checks nothing.
setup_selinux() {
    if [ "${INSTALL_K3S_SKIP_SELINUX_RPM}" = true ] || [ "${INSTALL_K3S_SKIP_DOWNLOAD}" = true ] || \
       [ "${INSTALL_K3S_SKIP_DOWNLOAD}" = selinux ] || [ ! -d "$R/usr/share/selinux" ]; then
        info "Skipping installation of SELinux RPM"
        return
    fi
    fatal "Installing the k3s-selinux RPM needs network access, which lab nodes do not have"
}

create_symlinks() {
    [ "${INSTALL_K3S_SYMLINK}" = skip ] && return
    for cmd in kubectl crictl ctr; do
        if [ ! -e "$R${BIN_DIR}/${cmd}" ] || [ "${INSTALL_K3S_SYMLINK}" = force ]; then
            which_cmd=$(command -v ${cmd} 2>/dev/null || true)
            if [ -z "${which_cmd}" ] || [ "${INSTALL_K3S_SYMLINK}" = force ]; then
                info "Creating ${BIN_DIR}/${cmd} symlink to k3s"
                ln -sf k3s "$R${BIN_DIR}/${cmd}"
            else
                info "Skipping ${BIN_DIR}/${cmd} symlink to k3s, command exists in PATH at ${which_cmd}"
            fi
        else
            info "Skipping ${BIN_DIR}/${cmd} symlink to k3s, already exists"
        fi
    done
}

# Fills the @VARS@ of the embedded scripts with this install's names and paths.
fill_template() {
    sed -e "s|@BIN_DIR@|${BIN_DIR}|g" -e "s|@SYSTEMD_DIR@|${SYSTEMD_DIR}|g" -e "s|@SYSTEM_NAME@|${SYSTEM_NAME}|g"
}

create_killall() {
    [ "${INSTALL_K3S_BIN_DIR_READ_ONLY}" = true ] && return
    info "Creating killall script ${KILLALL_K3S_SH}"
    fill_template > "$R${KILLALL_K3S_SH}" <<'K3S_KILLALL_EOF'
@KILLALL_SH@
K3S_KILLALL_EOF
    chmod 755 "$R${KILLALL_K3S_SH}"
}

create_uninstall() {
    [ "${INSTALL_K3S_BIN_DIR_READ_ONLY}" = true ] && return
    info "Creating uninstall script ${UNINSTALL_K3S_SH}"
    fill_template > "$R${UNINSTALL_K3S_SH}" <<'K3S_UNINSTALL_EOF'
@UNINSTALL_SH@
K3S_UNINSTALL_EOF
    chmod 755 "$R${UNINSTALL_K3S_SH}"
}

systemd_disable() {
    systemctl disable ${SYSTEM_NAME} >/dev/null 2>&1 || true
    rm -f "$R/etc/systemd/system/serviced.${SYSTEM_NAME}" || true
    rm -f "$R/etc/systemd/system/${SYSTEM_NAME}.service.env" || true
}

create_env_file() {
    info "env: Creating environment file ${FILE_K3S_ENV}"
    mkdir -p "$R${SYSTEMD_DIR}"
    umask 077
    : > "$R${FILE_K3S_ENV}"
    chmod 0600 "$R${FILE_K3S_ENV}"
    # export -p quotes every value, so tokens with odd characters survive.
    export -p | sed -n -e 's/^export //p' | grep -E '^(K3S|CONTAINERD)_' >> "$R${FILE_K3S_ENV}" || true
    export -p | sed -n -e 's/^export //p' | grep -Ei '^(NO|HTTP|HTTPS)_PROXY' >> "$R${FILE_K3S_ENV}" || true
    umask 022
}

create_systemd_service_file() {
    info "systemd: Creating service file ${FILE_K3S_SERVICE}"
    cat > "$R${FILE_K3S_SERVICE}" <<EOF
[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-${FILE_K3S_ENV}
KillMode=process
Delegate=yes
User=root
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=${BIN_DIR}/k3s \\
    ${CMD_K3S_EXEC}

EOF
    chmod 0644 "$R${FILE_K3S_SERVICE}"
}

service_enable_and_start() {
    if [ "${INSTALL_K3S_SKIP_ENABLE}" = true ]; then
        return
    fi
    info "systemd: Enabling ${SYSTEM_NAME} unit"
    systemctl enable "${FILE_K3S_SERVICE}" >/dev/null
    systemctl daemon-reload >/dev/null
    if [ "${INSTALL_K3S_SKIP_START}" = true ]; then
        return
    fi
    # Lab only: a scenario's ssh_drop plays a flaky link here, mid-install.
    "$R${BIN_DIR}/k3s" lab-fault ssh-drop "$([ -n "${K3S_URL}" ] && echo join || echo install)" >/dev/null 2>&1 || true
    # k3s-io/k3s install.sh service_enable_and_start: unchanged files leave the service as it is
    # (a stopped K3s stays stopped) unless INSTALL_K3S_FORCE_RESTART=true.
    POST_INSTALL_HASHES=$(get_installed_hashes)
    if [ "${PRE_INSTALL_HASHES}" = "${POST_INSTALL_HASHES}" ] && [ "${INSTALL_K3S_FORCE_RESTART}" != true ]; then
        info 'No change detected so skipping service start'
        return
    fi
    info "systemd: Starting ${SYSTEM_NAME}"
    systemctl restart ${SYSTEM_NAME}
}

# Like the upstream script: INSTALL_K3S_EXEC words come first, then the script's arguments.
eval set -- $(escape "${INSTALL_K3S_EXEC}") $(quote "$@")

verify_system
setup_env "$@"
download_and_verify
setup_selinux
create_symlinks
create_killall
create_uninstall
systemd_disable
create_env_file
create_systemd_service_file
service_enable_and_start
