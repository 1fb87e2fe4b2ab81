# Sourced by the suites' scripts: stopping the processes they started.

stop_pid() { # pid, seconds: TERM, wait up to that long, then KILL
  local pid=$1 secs=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
