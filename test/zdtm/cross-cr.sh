#!/bin/bash
# test/zdtm/cross-cr.sh PID IMGDIR: a CR_CMD that dumps with one tool and restores with the
# other, to check that the images are CRIU's: CROSS=stasis-criu (the default: stasis dumps,
# CRIU 4.2 restores) or CROSS=criu-stasis. Options as stasis-cr.sh and criu-cr.sh take them.
#   CR_CMD=test/zdtm/cross-cr.sh test/zdtm/run [--flavour ns] static/pipe00 ...
HERE=$(cd "$(dirname "$0")" && pwd)
STASIS=${STASIS:-$(cd "$HERE/../.." && pwd)}
CRIU=${STASIS_CRIU:-$(cd "$HERE/../../../shared/criu" 2>/dev/null && pwd)/criu}
pid=$1 dir=$2
[ -n "$pid" ] && [ -d "$dir" ] || { echo "usage: $0 PID IMGDIR" >&2; exit 2; }
[ -x "$CRIU" ] || { echo "no CRIU at $CRIU (set STASIS_CRIU)"; exit 2; }
case ${CROSS:-stasis-criu} in
  stasis-criu) dumper=("$STASIS/bin/stasis.js") restorer=("$CRIU") rflags=(--restore-detached) ;;
  criu-stasis) dumper=("$CRIU") restorer=("$STASIS/bin/stasis.js") rflags=(-d) ;;
  *) echo "CROSS is stasis-criu or criu-stasis, not $CROSS" >&2; exit 2 ;;
esac
# shellcheck source=cr-tree.sh
. "$HERE/cr-tree.sh"
remember_tree "$pid"
# shellcheck disable=SC2086 # the options are words
"${dumper[@]}" dump -t "$pid" -D "$dir" -o dump.log -v4 $ZDTM_OPTS $ZDTM_DOPTS >"$dir/dump.out" 2>&1 ||
  { echo "${dumper[0]##*/} dump failed"; tail -5 "$dir/dump.out"; grep -m5 Error "$dir/dump.log"; exit 1; }
wait_tree_gone
pre_restore
# shellcheck disable=SC2086
"${restorer[@]}" restore -D "$dir" -o restore.log -v4 "${rflags[@]}" $ZDTM_OPTS $ZDTM_ROPTS >"$dir/restore.out" 2>&1 ||
  { echo "${restorer[0]##*/} restore failed"; tail -5 "$dir/restore.out"; grep -m5 Error "$dir/restore.log"; exit 2; }
echo "dump+restore ok"
