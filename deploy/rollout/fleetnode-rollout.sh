#!/bin/sh
# fleetnode unattended rollout: install the agent, enroll this host with a pre-approved code,
# and hand the daemon to supervisord. Run as root, once per host (cloud-init, Ansible, an
# image's first boot):
#
#   printf '%s\n' "$CODE" | FLEET_SERVER_URL=https://fleet.example.com fleetnode-rollout.sh
#
# The enrollment code comes on standard input only (an argument or a variable would show in
# process listings and logs) and is written to $FLEETNODE_CODE_FILE (0600, owned by the
# agent's user) for `fleetnode enroll --code-file`; it is removed once the node is enrolled.
#
# Idempotent: on an enrolled host a run upgrades the package (FLEETNODE_INSTALL=1) and rewrites
# its supervisord program, and never enrolls again. A run that was
# interrupted after Register is finished by running this again with the same code (within
# 24 h): `enroll --force` resumes the saved identity key, so the gateway answers the same node
# with a fresh api key and the code loses no use. Exit status: 0, or fleetnode enroll's own
# (69 gateway unreachable past the enroll timeout, 77 code refused, 78 configuration).
#
# Settings (environment; the defaults suit a Debian host with the supervisor package):
#   FLEET_SERVER_URL          the gateway (required), e.g. https://fleet.example.com
#   FLEETNODE_NAME            node name (default: uname -n; must be unique in the org)
#   FLEETNODE_USER            user the agent runs as (default fleetnode; created if missing)
#   FLEETNODE_INSTALL         1: pip-install the agent into FLEETNODE_PREFIX (default);
#                             0: the image already has it there
#   FLEETNODE_PREFIX          the agent's virtualenv (default /opt/fleetnode)
#   FLEETNODE_PACKAGE         what pip installs (default fleetnode[agent])
#   FLEETNODE_STATE_DIR       the agent's state (default /var/lib/fleetnode)
#   FLEETNODE_CODE_FILE       where the code is kept until enrolled
#                             (default /etc/fleetnode/enrollment-code)
#   FLEETNODE_CA_FILE         CA bundle that signed the gateway's certificate (optional)
#   FLEETNODE_ENROLL_TIMEOUT  how long enroll retries through outages and rate limits
#                             (default 30m: a big rollout behind one NAT address is slow)
#   FLEETNODE_LOG_DIR         the daemon's log directory (default /var/log/fleetnode)
#   FLEETNODE_PROGRAM         supervisord program name (default fleetnode)
#   FLEETNODE_WATCHDOG        1: also run PROGRAM-watchdog, the event listener that restarts
#                             a wedged daemon (default); 0: the program alone
#   SUPERVISOR_CONF_DIR       where supervisord includes programs from
#                             (default /etc/supervisor/conf.d)
#   SUPERVISORCTL             how to reach supervisord (default supervisorctl)
set -eu

die() { # die STATUS MESSAGE
    echo "fleetnode-rollout: $2" >&2
    exit "$1"
}

[ -n "${FLEET_SERVER_URL:-}" ] || die 78 "set FLEET_SERVER_URL to the gateway's URL"
NAME=${FLEETNODE_NAME:-$(uname -n)}
NODE_USER=${FLEETNODE_USER:-fleetnode}
INSTALL=${FLEETNODE_INSTALL:-1}
PREFIX=${FLEETNODE_PREFIX:-/opt/fleetnode}
PACKAGE=${FLEETNODE_PACKAGE:-fleetnode[agent]}
STATE_DIR=${FLEETNODE_STATE_DIR:-/var/lib/fleetnode}
CODE_FILE=${FLEETNODE_CODE_FILE:-/etc/fleetnode/enrollment-code}
CA_FILE=${FLEETNODE_CA_FILE:-}
ENROLL_TIMEOUT=${FLEETNODE_ENROLL_TIMEOUT:-30m}
LOG_DIR=${FLEETNODE_LOG_DIR:-/var/log/fleetnode}
PROGRAM=${FLEETNODE_PROGRAM:-fleetnode}
WATCHDOG=${FLEETNODE_WATCHDOG:-1}
CONF_DIR=${SUPERVISOR_CONF_DIR:-/etc/supervisor/conf.d}
SUPERVISORCTL=${SUPERVISORCTL:-supervisorctl}
FLEETNODE=$PREFIX/bin/fleetnode
umask 077

# 1. Install.
if [ "$INSTALL" = 1 ]; then
    [ -x "$PREFIX/bin/pip" ] || python3 -m venv "$PREFIX"
    "$PREFIX/bin/pip" install --quiet --upgrade "$PACKAGE"
fi
[ -x "$FLEETNODE" ] || die 78 "$FLEETNODE is missing (FLEETNODE_INSTALL=1 installs it)"

# 2. The agent's user and its private directories (fleetnode refuses anything else).
if ! id -u "$NODE_USER" >/dev/null 2>&1; then
    useradd --system --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$NODE_USER"
fi
GROUP=$(id -gn "$NODE_USER")
for dir in "$STATE_DIR" "$(dirname "$CODE_FILE")" "$LOG_DIR"; do
    install -d -m 0700 -o "$NODE_USER" -g "$GROUP" "$dir"
done

as_node() {
    if [ "$(id -un)" = "$NODE_USER" ]; then
        "$@"
    else
        runuser -u "$NODE_USER" -- "$@"
    fi
}

# 3. Enroll, unless this host already is.
if as_node "$FLEETNODE" --state-dir "$STATE_DIR" status --json 2>/dev/null |
    grep -q '"api_key_present": true'; then
    echo "fleetnode-rollout: already enrolled; keeping its state" >&2
else
    code=""
    if [ -t 0 ]; then
        printf 'Enrollment code: ' >&2
        stty -echo
        IFS= read -r code || true
        stty echo
        echo >&2
    else
        IFS= read -r code || true
    fi
    if [ -n "$code" ]; then
        # A private temp file in the same directory, then a rename: never a readable or
        # half-written code file. printf is a shell builtin: the code is in no argv.
        tmp=$(mktemp "$CODE_FILE.XXXXXX")
        printf '%s\n' "$code" >"$tmp"
        chown "$NODE_USER:$GROUP" "$tmp"
        mv -f "$tmp" "$CODE_FILE"
    elif [ ! -e "$CODE_FILE" ]; then
        die 78 "no enrollment code on standard input and none in $CODE_FILE"
    fi
    unset code
    # A state left by an interrupted run: --force resumes it (same identity key).
    force=""
    [ ! -e "$STATE_DIR/state.json" ] || force=--force
    # $force unquoted on purpose: empty, it is no argument at all.
    set -- --state-dir "$STATE_DIR" enroll --server-url "$FLEET_SERVER_URL" --name "$NAME" \
        --code-file "$CODE_FILE" --enroll-timeout "$ENROLL_TIMEOUT" $force
    [ -z "$CA_FILE" ] || set -- "$@" --ca-file "$CA_FILE"
    status=0
    as_node "$FLEETNODE" "$@" || status=$?
    [ "$status" = 0 ] || die "$status" "fleetnode enroll failed (exit $status); see above"
    rm -f "$CODE_FILE" # enrolled: the (multi-use) code has nothing left to do here
fi

# 4. Hand the daemon, and its watchdog, to supervisord (the settings of
#    deploy/supervisord/fleetnode.conf).
conf=$CONF_DIR/$PROGRAM.conf
tmp=$(mktemp "$conf.XXXXXX")
cat >"$tmp" <<EOF
; written by fleetnode-rollout: fleetnode under supervisord (see deploy/supervisord/)
[program:$PROGRAM]
command=$FLEETNODE --state-dir $STATE_DIR --log-format json run
user=$NODE_USER
autostart=true
autorestart=unexpected
exitcodes=0,77,78
startsecs=0
stopsignal=TERM
stopwaitsecs=10
redirect_stderr=true
stdout_logfile=$LOG_DIR/$PROGRAM.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
EOF
groups=$PROGRAM
if [ "$WATCHDOG" = 1 ]; then
    # It runs as supervisord's user, the one that may use its socket; it only reads the state.
    cat >>"$tmp" <<EOF

[eventlistener:$PROGRAM-watchdog]
command=$FLEETNODE --state-dir $STATE_DIR --log-format json watchdog --program $PROGRAM
events=TICK_60
autostart=true
autorestart=true
stderr_logfile=$LOG_DIR/$PROGRAM-watchdog.log
stderr_logfile_maxbytes=10MB
stderr_logfile_backups=5
EOF
    groups="$PROGRAM $PROGRAM-watchdog"
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$conf"
# $groups unquoted on purpose: one or two group names.
$SUPERVISORCTL update $groups
echo "fleetnode-rollout: $NAME enrolled and handed to supervisord as $PROGRAM" >&2
