# Shared by ci/bench, ci/alloc-check, ci/soak, ci/health-cost and ci/loadgen-vs-ab (sourced, not run).
# Loopback only; everything started is recorded in STARTED_PIDS and stopped by stop_started (kill by
# PID, never by name).
STARTED_PIDS=()

# free_range COUNT: prints the first port of COUNT consecutive ports that all bind on 127.0.0.1 now.
free_range() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(500):
    base = random.randint(20000, 31000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks: s.close()
    print(base); break
else:
    sys.exit("no free port range")
PY
}

# wait_listen PORT [SECONDS]: waits until something listens on 127.0.0.1:PORT (ss, no connection made).
wait_listen() {
    local port=$1 limit=$(( ${2:-10} * 10 ))
    for _ in $(seq "$limit"); do
        ss -ltnH "sport = :$port" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port" >&2
    return 1
}

# start_bg LOGFILE CMD...: starts CMD in the background, records its PID in STARTED_PIDS and $LAST_PID.
start_bg() {
    local log=$1; shift
    "$@" >"$log" 2>&1 &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
}

# stop_pid PID: SIGTERM, then SIGKILL after 5 s; only PIDs this script started.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_started() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
    STARTED_PIDS=()
}

# cpu_ticks PID: utime+stime of the whole process (all threads), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# rss_kib PID
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
