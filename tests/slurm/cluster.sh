#!/usr/bin/env bash
# Start or stop a one-node SLURM cluster on localhost (Debian's slurm-wlm 22.05, no systemd).
#
#   tests/slurm/cluster.sh start STATE_DIR   # munged, MariaDB, slurmdbd, slurmctld, slurmd
#   tests/slurm/cluster.sh stop STATE_DIR    # stops each daemon by the PID it recorded
#
# The node offers two GPUs of type h200 (on /dev/null and /dev/zero) in the partition `gpu`; `cpu` is the
# default partition. Accounting goes through slurmdbd into a private MariaDB under STATE_DIR
# (loopback port $SLURM_TEST_DB_PORT, default 33061), so `sacct` answers as on a production
# cluster and the executor plugin polls it unchanged.
#
# Needs root and the packages that .ci/slurm-setup installs. Refuses to overwrite an
# /etc/slurm/slurm.conf that it did not write. Everything else lives under STATE_DIR.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ETC=/etc/slurm
MARK="# Written by tests/slurm/cluster.sh"
DB_PORT="${SLURM_TEST_DB_PORT:-33061}"
TEST_ACCOUNT=tavtest

die() { echo "cluster.sh: $*" >&2; exit 1; }
trap 'echo "cluster.sh: line $LINENO: \`$BASH_COMMAND\` failed" >&2' ERR

# Wait until "$@" succeeds, at most $1 seconds (polling every 0.2 s).
wait_for() {
    local limit=$1; shift
    local end=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}

# Remember a daemon's PID (from its pid file) so that `stop` can end exactly it.
record() {
    local name=$1 pidfile=$2
    wait_for 20 test -s "$pidfile" || die "$name wrote no pid file $pidfile; see $STATE"
    echo "$name $(cat "$pidfile")" >>"$STATE/pids"
}

ours() { [ ! -e "$1" ] || head -n 3 "$1" | grep -qF "$MARK"; }

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root (it writes $ETC and starts daemons)"
    for bin in munged slurmctld slurmd slurmdbd sbatch sacct mariadbd mariadb-install-db; do
        command -v "$bin" >/dev/null || die "$bin not found: run .ci/slurm-setup"
    done
    ours "$ETC/slurm.conf" || die "$ETC/slurm.conf exists and was not written by this script"
    [ ! -s "$STATE/pids" ] || die "$STATE/pids exists: a cluster from $STATE may still run (stop it)"
    # Every start is a fresh cluster: no job, account or database left from an earlier one.
    rm -rf "$STATE/ctld" "$STATE/d" "$STATE/db" "$STATE"/*.log "$STATE"/*.pid
    mkdir -p "$STATE/ctld" "$STATE/d" "$ETC"
    : >"$STATE/pids"

    # munge: the key comes with the package; the runtime folder does not (no systemd).
    [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    record munged /run/munge/munged.pid
    wait_for 10 munge -n || die "munged does not answer"

    local cpus memory
    cpus=$(nproc --all)  # not nproc: it follows OMP_NUM_THREADS, which a job step may have set in this process
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
    { echo "$MARK from tests/slurm/slurm.conf.in; state in $STATE"
      sed -e "s|@STATE@|$STATE|g" -e "s|@CPUS@|$cpus|" -e "s|@MEMORY@|$memory|" \
          "$HERE/slurm.conf.in"
    } >"$ETC/slurm.conf"
    { echo "$MARK"; cat "$HERE/gres.conf"; } >"$ETC/gres.conf"
    start_db

    slurmctld
    record slurmctld "$STATE/slurmctld.pid"
    slurmd -N localhost
    record slurmd "$STATE/slurmd.pid"
    # The node is usable once it registered and is idle.
    wait_for 30 sh -c 'sinfo -h -N -o %t -p gpu | grep -qx idle' \
        || { sinfo -N -l >&2 || true; tail -n 20 "$STATE"/slurm*.log >&2; die "node did not come up"; }
    add_account
    echo "cluster up: $(sinfo -h -o '%P %G %t' | tr '\n' ' ')account $TEST_ACCOUNT"
}

start_db() {
    # A private MariaDB for slurmdbd only: its own datadir, socket and loopback port. It runs as
    # root, like the SLURM daemons here: STATE_DIR may be private to root (pytest's tmp_path is).
    local db="$STATE/db"
    mkdir -p "$db"
    mariadb-install-db --no-defaults --user=root --datadir="$db" --skip-test-db \
        --auth-root-authentication-method=socket >"$STATE/db-install.log" 2>&1 \
        || { cat "$STATE/db-install.log" >&2; die "mariadb-install-db failed"; }
    mariadbd --no-defaults --user=root --datadir="$db" --socket="$db/db.sock" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$db/db.pid" \
        --log-error="$STATE/db.log" --skip-log-bin --innodb-buffer-pool-size=64M --innodb-log-file-size=8M \
        </dev/null >>"$STATE/db.log" 2>&1 &
    record mariadbd "$db/db.pid"
    wait_for 30 mariadb --no-defaults --socket="$db/db.sock" -e 'select 1' \
        || { cat "$STATE/db.log" >&2; die "MariaDB did not start"; }
    mariadb --no-defaults --socket="$db/db.sock" -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'tav-test';
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'tav-test';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    { echo "$MARK"
      cat <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=tav-test
StorageLoc=slurm_acct_db
EOF
    } >"$ETC/slurmdbd.conf"
    chmod 600 "$ETC/slurmdbd.conf"
    slurmdbd
    record slurmdbd "$STATE/slurmdbd.pid"
    wait_for 30 sacctmgr -n list cluster || { cat "$STATE/slurmdbd.log" >&2; die "slurmdbd does not answer"; }
}

add_account() {
    # An account for root, as sites have: the profile's TAV_SLURM_ACCOUNT is checked against it.
    sacctmgr -i add account "$TEST_ACCOUNT" Description="tav-pipeline tests" Organization=tav >/dev/null
    sacctmgr -i add user root Account="$TEST_ACCOUNT" >/dev/null
}

stop() {
    [ -f "$STATE/pids" ] || { echo "cluster.sh: nothing recorded in $STATE/pids"; return 0; }
    # Cancel what still runs (a failed test may leave jobs), then stop the daemons in reverse
    # order of start, waiting for each PID to go before the next.
    local name pid jobs=""
    if grep -q "^slurmctld " "$STATE/pids"; then
        jobs=$(squeue -h -o %i 2>/dev/null || true)
    fi
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086  # one job id a word
        scancel --full $jobs 2>/dev/null || true
        wait_for 20 sh -c '[ -z "$(squeue -h -o %i)" ]' || echo "cluster.sh: jobs still listed after scancel" >&2
    fi
    tac "$STATE/pids" | while read -r name pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait_for 15 sh -c "! kill -0 $pid" || { echo "cluster.sh: $name ($pid) ignores TERM, killing" >&2; kill -9 "$pid" 2>/dev/null || true; }
        fi
    done
    rm -f "$STATE/pids"
    local f
    for f in "$ETC/slurm.conf" "$ETC/gres.conf" "$ETC/slurmdbd.conf"; do
        if [ -e "$f" ] && ours "$f"; then rm -f "$f"; fi
    done
    echo "cluster down"
}

[ $# -eq 2 ] || die "usage: $0 start|stop STATE_DIR"
STATE="$(mkdir -p "$2" && cd "$2" && pwd)"
case "$1" in
    start)
        trap 'rc=$?; if [ $rc -ne 0 ]; then echo "cluster.sh: start failed, stopping what did start" >&2; stop; fi' EXIT
        start ;;
    stop) stop ;;
    *) die "usage: $0 start|stop STATE_DIR" ;;
esac
