# Helpers of the scripts that run MPI jobs of the demo and kill them; sourced.

fail() {  # fail MESSAGE [LOG]: prints the message (and the log), exits 1
  echo "FAIL: $1"
  [ -z "${2:-}" ] || cat "$2"
  exit 1
}

# mpirun ends the other ranks of a job one of whose ranks died, but they may
# outlive mpirun for a moment: the next job must not start beside them.
wait_for_ranks_to_exit() {  # wait_for_ranks_to_exit PROGRAM
  for _ in $(seq 1 600); do
    pgrep -f "^$1( |$)" >/dev/null || return 0
    sleep 0.05
  done
  fail "ranks of a killed job still run after 30 s"
}
