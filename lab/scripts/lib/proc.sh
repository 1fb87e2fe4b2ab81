# Sourced by the suites' scripts: running long steps so that INT/TERM reach the caller's trap
# at once, and stopping the processes they started.

# The step running in the foreground, for the caller's cleanup to stop (stop_pid "$CHILD_PID").
CHILD_PID=

# step <command...>: runs it in the background and waits for it, returning its exit status.
step() { local rc=0; "$@" & CHILD_PID=$!; wait "$CHILD_PID" || rc=$?; CHILD_PID=; return "$rc"; }
# step_to <file> <command...>: the same, with the command's stdout to a file (not the
# function's, which the trap would inherit).
step_to() { local out=$1 rc=0; shift; "$@" >"$out" & CHILD_PID=$!; wait "$CHILD_PID" || rc=$?; CHILD_PID=; return "$rc"; }

stop_pid() { # pid, seconds: TERM, wait up to that long, then KILL
  local pid=$1 secs=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
