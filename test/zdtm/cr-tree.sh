# Sourced by the CR commands (stasis-cr.sh, criu-cr.sh): what they do around the dump and the
# restore alike. remember_tree PID notes the tree's pids before the dump; after it,
# wait_tree_gone waits (10 s at most) until no process holds one of them as its pid, group or
# session, so that the restore can have them; pre_restore runs zdtm's --pre-restore hook
# (the ns runner's, run-one-ns.sh) between the dump and the restore.
tree_pids() { local p=$1 c; echo "$p"; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do tree_pids "$c"; done; }
remember_tree() { TREE=" $(tree_pids "$1" | tr '\n' ' ') "; }
busy() {
  local f st p
  for f in /proc/[0-9]*/stat; do
    read -r st 2>/dev/null <"$f" || continue
    set -- ${st##*) }
    p=${f//[!0-9]/}
    [[ "$TREE" == *" $p "* || "$TREE" == *" $3 "* || "$TREE" == *" $4 "* ]] && { echo "$p"; return 0; }
  done
  return 1
}
wait_tree_gone() {
  local b
  for _ in $(seq 100); do busy >/dev/null || break; sleep 0.1; done
  b=$(busy) && { echo "pid $b of the dumped tree still present after dump"; exit 1; }
  return 0
}
pre_restore() {
  if [ -n "${ZDTM_PRE_RESTORE:-}" ]; then bash -c "$ZDTM_PRE_RESTORE" || { echo "hook --pre-restore failed"; exit 1; }; fi
}
