#!/bin/bash
# test/zdtm/stasis-cr.sh PID IMGDIR: zdtm's CR_CMD for this checkout. Dumps the tree rooted
# at PID with zdtm's per-test CRIU options ($ZDTM_OPTS for both, $ZDTM_DOPTS for the dump,
# $ZDTM_ROPTS for the restore: stasis takes CRIU's flags and refuses those it does not know),
# waits until the dumped tree's pids are free, restores it detached.
STASIS=${STASIS:-$(cd "$(dirname "$0")/../.." && pwd)}
pid=$1 dir=$2
[ -n "$pid" ] && [ -d "$dir" ] || { echo "usage: $0 PID IMGDIR" >&2; exit 2; }
st() { "$STASIS/bin/stasis.js" "$@"; } # as a user runs it: from its start-up snapshot
# shellcheck source=cr-tree.sh
. "$(dirname "$0")/cr-tree.sh"
remember_tree "$pid"
# shellcheck disable=SC2086 # the options are words
st dump -t "$pid" -D "$dir" -o dump.log -v4 $ZDTM_OPTS $ZDTM_DOPTS ${STASIS_DUMP_OPTS:-} >"$dir/dump.out" 2>&1 ||
  { echo "stasis dump failed"; tail -5 "$dir/dump.out"; exit 1; }
wait_tree_gone
pre_restore
# shellcheck disable=SC2086
st restore -D "$dir" -d -o restore.log -v4 $ZDTM_OPTS $ZDTM_ROPTS ${STASIS_RESTORE_OPTS:-} >"$dir/restore.out" 2>&1 ||
  { echo "stasis restore failed"; tail -5 "$dir/restore.out"; exit 2; }
echo "dump+restore ok"
