#!/bin/bash
D=${1:-/tmp/slurm-ci}
stop() {  # SIGTERM all given pid files, then wait up to 10 s for each
  local pids=() f p
  for f in "$@"; do [ -s "$f" ] && p=$(cat "$f") && kill "$p" 2>/dev/null && pids+=("$p"); done
  for p in "${pids[@]}"; do for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  [ ${#pids[@]} -gt 0 ] && echo "stopped: ${pids[*]}"
  return 0
}
stop "$D/slurmd.pid" "$D/slurmctld.pid" "$D/slurmdbd.pid" "$D/mysql/mariadb.pid"
stop /run/munge/munged.pid
