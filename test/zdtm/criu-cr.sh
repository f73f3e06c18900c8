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
tree_pids() { local p=$1 c; echo "$p"; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do tree_pids "$c"; done; }
TREE=" $(tree_pids "$pid" | tr '\n' ' ') "
# shellcheck disable=SC2086 # the options are words
"$CRIU" dump -t "$pid" -D "$dir" -o dump.log -v4 $ZDTM_OPTS $ZDTM_DOPTS >"$dir/dump.out" 2>&1 ||
  { echo "criu dump failed"; grep -m5 Error "$dir/dump.log"; exit 1; }
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
"$CRIU" restore -D "$dir" -o restore.log -v4 --restore-detached $ZDTM_OPTS $ZDTM_ROPTS >"$dir/restore.out" 2>&1 ||
  { echo "criu restore failed"; grep -m5 Error "$dir/restore.log"; exit 2; }
echo "dump+restore ok"
