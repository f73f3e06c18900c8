#!/bin/bash
# test/zdtm/run-list-ns.sh [LISTFILE|TEST...]: run-one-ns.sh for each test, one after the other;
# one line per test ("TEST RESULT SECONDSs") and a summary, as ../shared/zdtm/run-list.sh
# prints them. No argument: every test of $TABLE whose flavours include ns.
HERE=$(cd "$(dirname "$0")" && pwd)
: "${TABLE:?set TABLE to zdtm tests.tsv}"
if [ $# -eq 0 ]; then set -- $(awk -F'\t' '$8 ~ /(^| )ns( |$)/ {print $1}' "$TABLE"); fi
if [ $# -eq 1 ] && [ -f "$1" ]; then tests=$(grep -v '^\s*#' "$1" | awk 'NF {print $1}'); else tests="$*"; fi
T0=$(date +%s)
declare -A cnt
for t in $tests; do
	out=$(QUIET=${QUIET-1} "$HERE/run-one-ns.sh" "$t" 2>&1)
	r=$(echo "$out" | awk '$1=="RESULT"{print $3" "$4}' | tail -n1)
	v=${r%% *}; [ -n "$v" ] || v=ERROR
	printf "%-28s %-10s %6ss\n" "$t" "$v" "${r#* }"
	cnt[$v]=$(( ${cnt[$v]:-0} + 1 ))
done
echo "---- summary ($(( $(date +%s) - T0 ))s total):"
for k in "${!cnt[@]}"; do echo "  $k ${cnt[$k]}"; done
