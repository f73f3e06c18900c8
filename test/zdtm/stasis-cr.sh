#!/bin/bash
# test/zdtm/stasis-cr.sh PID IMGDIR: zdtm's CR_CMD for this checkout. Dumps the tree rooted
# at PID with zdtm's per-test CRIU options ($ZDTM_OPTS for both, $ZDTM_DOPTS for the dump,
# $ZDTM_ROPTS for the restore: stasis takes CRIU's flags and refuses those it does not know),
# waits until the dumped tree's pids are free, restores it detached.
STASIS=${STASIS:-$(cd "$(dirname "$0")/../.." && pwd)}
pid=$1 dir=$2
[ -n "$pid" ] && [ -d "$dir" ] || { echo "usage: $0 PID IMGDIR" >&2; exit 2; }
st() { node "$STASIS/bin/stasis.js" "$@"; }
tree_pids() { local p=$1 c; echo "$p"; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do tree_pids "$c"; done; }
TREE=" $(tree_pids "$pid" | tr '\n' ' ') "
# shellcheck disable=SC2086 # the options are words
st dump -t "$pid" -D "$dir" -o dump.log -v4 $ZDTM_OPTS $ZDTM_DOPTS ${STASIS_DUMP_OPTS:-} >"$dir/dump.out" 2>&1 ||
  { echo "stasis dump failed"; tail -5 "$dir/dump.out"; exit 1; }
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
for _ in $(seq 100); do busy >/dev/null || break; sleep 0.1; done
b=$(busy) && { echo "pid $b of the dumped tree still present after dump"; exit 1; }
# zdtm's --pre-restore hook (the ns runner's, run-one-ns.sh), between the dump and the restore.
if [ -n "${ZDTM_PRE_RESTORE:-}" ]; then bash -c "$ZDTM_PRE_RESTORE" || { echo "hook --pre-restore failed"; exit 1; }; fi
# shellcheck disable=SC2086
st restore -D "$dir" -d -o restore.log -v4 $ZDTM_OPTS $ZDTM_ROPTS ${STASIS_RESTORE_OPTS:-} >"$dir/restore.out" 2>&1 ||
  { echo "stasis restore failed"; tail -5 "$dir/restore.out"; exit 2; }
echo "dump+restore ok"
