#!/bin/bash
# test/zdtm/criu-cr.sh PID IMGDIR: a CR_CMD that checkpoints and restores with CRIU (the
# reference, $STASIS_CRIU, default ../shared/criu/criu beside the checkout), as zdtm.py drives
# it: `criu dump -t PID -o dump.log -v4` and `criu restore --restore-detached -o restore.log -v4`,
# each with zdtm's per-test options ($ZDTM_OPTS for both, $ZDTM_DOPTS, $ZDTM_ROPTS; the ns
# flavour adds --root and --pidfile there). Used to measure CRIU on the runner stasis is measured
# on (test/zdtm/criu-4.2-ns.tsv).
HERE=$(cd "$(dirname "$0")" && pwd)
CRIU=${STASIS_CRIU:-$(cd "$HERE/../../../shared/criu" 2>/dev/null && pwd)/criu}
pid=$1 dir=$2
[ -n "$pid" ] && [ -d "$dir" ] || { echo "usage: $0 PID IMGDIR" >&2; exit 2; }
[ -x "$CRIU" ] || { echo "no CRIU at $CRIU (set STASIS_CRIU)"; exit 2; }
# shellcheck source=cr-tree.sh
. "$(dirname "$0")/cr-tree.sh"
remember_tree "$pid"
# shellcheck disable=SC2086 # the options are words
"$CRIU" dump -t "$pid" -D "$dir" -o dump.log -v4 $ZDTM_OPTS $ZDTM_DOPTS >"$dir/dump.out" 2>&1 ||
  { echo "criu dump failed"; grep -m5 Error "$dir/dump.log"; exit 1; }
wait_tree_gone
pre_restore
# shellcheck disable=SC2086
"$CRIU" restore -D "$dir" -o restore.log -v4 --restore-detached $ZDTM_OPTS $ZDTM_ROPTS >"$dir/restore.out" 2>&1 ||
  { echo "criu restore failed"; grep -m5 Error "$dir/restore.log"; exit 2; }
echo "dump+restore ok"
