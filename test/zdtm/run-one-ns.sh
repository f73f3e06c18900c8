#!/bin/bash
# test/zdtm/run-one-ns.sh TEST: one zdtm test of the ns flavour, as CRIU's zdtm.py runs it
# (its ns_flavor), checkpointed and restored by $CR_CMD. Adapted from ../shared/zdtm/run-one.sh
# (whose header documents CR_CMD, ZDTM_DIR, WORK_BASE, KEEP, DROP_UID, TEST_TIMEOUT, CR_TIMEOUT,
# QUIET and the verdicts); what differs:
#   - The test gets a root of its own, $W/root, made as zdtm.py makes it: /bin /sbin /etc /lib
#     /lib64 /dev /dev/pts /dev/net /tmp /usr /proc /run (mode 0777), /usr/{bin,sbin,lib,lib64}
#     linking to ../bin etc., the nodes /dev/tty, null, net/tun, rtc and autofs, the libraries of
#     the test's binary (ldd) and the deps of its .desc (with theirs). Where zdtm.py bind-mounts
#     CRIU's test folder as the root, this one holds the test's folder ($ZDTM_DIR/<dir>, its
#     files hard-linked, or copied across filesystems) at /zdtm/<dir>, where it is in CRIU's tree
#     (the .desc options name such paths), and where the test runs. The root
#     is bound on itself (private), the mount ns.c's pivot_root needs, and unmounted at the end.
#   - The test is started from /zdtm/<dir> of the root with ZDTM_NEWNS=1 ZDTM_ROOT=<root> (and
#     ZDTM_BIND=<the .desc's bind>, a folder ns.c binds on itself, as zdtm.py sets it): its
#     lib/ns.c clones it into new pid, mount, net, IPC and UTS namespaces, makes the root its
#     own (pivot_root, a fresh /proc, /run and /dev/pts), and it runs as their init (which also
#     makes a time namespace); the pidfile holds the init's pid, as the runner sees it.
#   - CR_CMD gets zdtm.py's options for the flavour: "--root <root>" in $ZDTM_OPTS, and
#     "--pidfile <imgdir>/restored.pid" in $ZDTM_ROPTS (the restored init has another pid).
#   - The test's hook ($ZDTM_DIR/<dir>/<name>.hook), if it has one, runs where zdtm.py runs it
#     (its cwd a folder where zdtm/ is the root's; /usr/bin first in PATH,
#     whose python3 has pycriu): --post-start while the test starts (a failure: START-FAIL),
#     --pre-dump before CR_CMD (CR-FAIL), --pre-restore between the dump and the restore (CR_CMD
#     runs $ZDTM_PRE_RESTORE there), --post-restore after it (FAIL: it checks what was restored),
#     --clean at the end; ZDTM_TEST_PID and ZDTM_IMG_DIR as zdtm.py sets them.
#   - What a test makes in /tmp before its namespaces (zdtm_*: mnt_ext_manual's tmpfs and others)
#     is removed at the end (unmounted first), as are the root and the work dir of a test that passed.
# Not done: zdtm.py's chmod 0700 of the root's parent after the start (a runc case).
# Last line of stdout: "RESULT <test> <verdict> <seconds>".

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUBREAPER=${SUBREAPER:-$ZDTM_DIR/subreaper}
if [ -z "$ZDTM_RUN_REAPED" ] && [ -x "$SUBREAPER" ]; then
	export ZDTM_RUN_REAPED=1
	exec "$SUBREAPER" /bin/bash "${BASH_SOURCE[0]}" "$@"
fi

: "${ZDTM_DIR:?set ZDTM_DIR to the built test/zdtm folder of a CRIU checkout}"
CR_CMD=${CR_CMD:-$HERE/stasis-cr.sh}
WORK_BASE=${WORK_BASE:-${TMPDIR:-/tmp}/zdtm-work}
TABLE=${TABLE:?set TABLE to zdtm tests.tsv}
CR_TIMEOUT=${CR_TIMEOUT:-120}

t=$1
[ -n "$t" ] || { echo "usage: $0 TEST" >&2; exit 2; }
case "$t" in */*) ;; *) t=static/$t ;; esac
line=$(awk -F'\t' -v id="$t" '$1 == id' "$TABLE")
if [ -z "$line" ]; then echo "RESULT $t NOT-FOUND 0"; exit 1; fi
IFS=$'\t' read -r id sub args flags opts dopts ropts flavor tmo feature arch <<<"$line"
dash() { [ "$1" = "-" ] && echo "" || echo "$1"; }
flags=$(dash "$flags"); opts=$(dash "$opts"); dopts=$(dash "$dopts"); ropts=$(dash "$ropts")
tmo=$(dash "$tmo"); tmo=${TEST_TIMEOUT:-${tmo:-30}}
name=${id#*/}
bin=$ZDTM_DIR/$sub/$name
[ -x "$bin" ] || { echo "RESULT $t NOT-BUILT 0"; exit 1; }

T0=$(date +%s.%N)
mkdir -p "$WORK_BASE"
W=$(mktemp -d "$WORK_BASE/${name}.XXXXXX")
R=$W/root IMG=$W/img RUN=$W/root/zdtm/$sub
mkdir -p "$R" "$IMG"
chmod 0777 "$W"
root_mounted=

elapsed() { echo "$(date +%s.%N) $T0" | awk '{printf "%.1f", $1-$2}'; }
pstate() { local s; read -r s 2>/dev/null </proc/$1/stat || { echo gone; return; }; s=${s##*) }; echo "${s%% *}"; }
alive() { local s; s=$(pstate "$1"); [ "$s" != gone ] && [ "$s" != Z ] && [ "$s" != X ]; }
REAPER=$PPID
session_pids() {
	local f s p
	for f in /proc/[0-9]*/stat; do
		read -r s 2>/dev/null <"$f" || continue
		p=${f//[!0-9]/}; [ "$p" = "$$" ] && continue
		s=${s##*) }; set -- $s
		if [ "$4" = "$SID" ] || { [ -n "$ZDTM_RUN_REAPED" ] && [ "$2" = "$REAPER" ] && [ "$1" != Z ]; }; then
			echo "$p"; continue
		fi
		[[ -d $RUN && /proc/$p/cwd -ef $RUN ]] && echo "$p"
	done
}
cleanup_tree() {
	local p left
	for p in $(session_pids); do kill -KILL "$p" 2>/dev/null; done
	for _ in $(seq 50); do left=$(session_pids); [ -z "$left" ] && break; sleep 0.1; done
}
show_output() {
	[ -n "$QUIET" ] && return
	local f
	for f in "$RUN/$name.out" "$RUN/$name.out.inprogress" "$W/launch.log" "$W/hook.log" "$W/cr.log"; do
		[ -s "$f" ] || continue
		echo "----- ${f#$W/} -----"; tail -n 40 "$f"
	done
}
finish() {  # $1 = verdict
	local v=$1
	cleanup_tree
	[ -n "$HOOK" ] && [ -d "$W/hook" ] && run_hook --clean
	[ -n "$root_mounted" ] && umount -l "$R"
	clean_tmp
	echo "RESULT $t $v $(elapsed)"
	if [ "$v" = PASS ] && [ -z "$KEEP" ]; then rm -rf "$W"; else echo "workdir: $W"; fi
	[ "$v" = PASS ]; exit $?
}

# run_hook ARG: the test's hook, as zdtm.py's try_run_hook runs it; its output goes to hook.log.
HOOK=
[ -x "$ZDTM_DIR/$sub/$name.hook" ] && HOOK=$ZDTM_DIR/$sub/$name.hook
run_hook() {
	echo "+ $name.hook $1" >>"$W/hook.log"
	( cd "$W/hook" && PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH exec timeout -k 5 "$tmo" "$HOOK" "$1" ) >>"$W/hook.log" 2>&1 </dev/null
}

# What the test left in /tmp (zdtm_*, newer than the work dir), mounts unmounted first.
clean_tmp() {
	local f
	for f in $(find /tmp -maxdepth 1 -name 'zdtm_*' -newer "$W/.start" 2>/dev/null); do
		while mountpoint -q "$f" 2>/dev/null; do umount -l "$f" || break; done
		rm -rf "$f"
	done
}
touch "$W/.start"

# ---- 0. the root (zdtm.py's ns_flavor) -------------------------------------
copy_one() {  # FILE: into the root at its own path, if not there yet
	[ -e "$R$1" ] && return 0
	mkdir -p "$R$(dirname "$1")" && cp -L "$1" "$R$1"
}
copy_libs() {  # BINARY: the libraries ldd names, less the vDSO
	local lib
	for lib in $(ldd "$1" 2>/dev/null | awk '/^\t/ && !/linux-vdso|linux-gate|not a dynamic/ {print ($2 == "=>") ? $3 : $1}'); do
		[ -e "$lib" ] || { echo "no library $lib, which $1 needs"; return 1; }
		copy_one "$lib" || return 1
	done
}
make_node() {  # NAME [MAJOR MINOR]
	local n=/dev/$1 maj=${2:-} min=${3:-}
	if [ -z "$maj" ]; then
		[ -c "$n" ] || return 0
		maj=$((0x$(stat -c %t "$n"))) min=$((0x$(stat -c %T "$n")))
	fi
	mknod -m 0666 "$R$n" c "$maj" "$min" && chmod 0666 "$R$n"
}
# The deps of the test's .desc (zdtm.py's __copy_deps): each one is "A|B|...", the first that exists.
desc_deps() {
	[ -f "$ZDTM_DIR/$sub/$name.desc" ] || return 0
	python3 -c 'import ast, sys; print("\n".join(ast.literal_eval(open(sys.argv[1]).read()).get("deps", [])))' \
		"$ZDTM_DIR/$sub/$name.desc"
}
desc_bind() {
	[ -f "$ZDTM_DIR/$sub/$name.desc" ] || return 0
	python3 -c 'import ast, sys; print(ast.literal_eval(open(sys.argv[1]).read()).get("bind", ""))' "$ZDTM_DIR/$sub/$name.desc"
}
make_root() {
	local d dep alt found
	for d in /bin /sbin /etc /lib /lib64 /dev /dev/pts /dev/net /tmp /usr /proc /run; do
		mkdir "$R$d" && chmod 0777 "$R$d" || return 1
	done
	for d in /bin /sbin /lib /lib64; do ln -s "..$d" "$R/usr$d"; done
	make_node tty 5 0 && make_node null 1 3 && make_node net/tun && make_node rtc && make_node autofs 10 235 || return 1
	mkdir "$R/zdtm" && chmod 0777 "$R/zdtm" || return 1
	cp -al "$ZDTM_DIR/$sub" "$RUN" 2>/dev/null || { rm -rf "$RUN"; cp -a "$ZDTM_DIR/$sub" "$RUN"; } || return 1
	copy_libs "$bin" || return 1
	while IFS= read -r dep; do
		[ -n "$dep" ] || continue
		found=
		IFS='|' read -ra alt <<<"$dep"
		for d in "${alt[@]}"; do
			[ -e "$d" ] || continue
			copy_one "$d" && copy_libs "$d" || return 1
			found=1; break
		done
		[ -n "$found" ] || { echo "deps check $dep failed"; return 1; }
	done < <(desc_deps)
	mount --bind "$R" "$R" && root_mounted=1 && mount --make-private "$R"
}
if ! make_root >"$W/root.log" 2>&1; then
	echo "could not make the test's root:"; cat "$W/root.log"; finish START-FAIL
fi
chmod 0777 "$RUN"
if [ -n "$HOOK" ]; then mkdir -p "$W/hook" && ln -s "$R/zdtm" "$W/hook/zdtm"; fi

# ---- 1. launch ----------------------------------------------------------
env_add=(TMPDIR=/tmp ZDTM_THREAD_BOMB=5 ZDTM_NEWNS=1 "ZDTM_ROOT=$R"
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
bind=$(desc_bind)
[ -n "$bind" ] && env_add+=("ZDTM_BIND=$bind")
if [ -n "$DROP_UID" ] && [[ " $flags " != *" suid "* ]]; then
	env_add+=(ZDTM_UID=18943 ZDTM_GID=58467 "ZDTM_GROUPS=27495 48244")
fi
(
	cd "$RUN" || exit 1
	for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
	exec env -u ZDTM_RUN_REAPED -u ZDTM_USERNS "${env_add[@]}" \
		timeout -k 5 "$tmo" "./$name" $args </dev/null
) >"$W/launch.log" 2>&1 &
launcher=$!
hook_rc=0
[ -n "$HOOK" ] && { run_hook --post-start; hook_rc=$?; }
wait "$launcher"
rc=$?
if [ $hook_rc -ne 0 ]; then echo "hook --post-start rc=$hook_rc"; show_output; finish START-FAIL; fi
if [ $rc -ne 0 ] || [ ! -s "$RUN/$name.pid" ]; then
	echo "launcher rc=$rc"; show_output; finish START-FAIL
fi
PID=$(cat "$RUN/$name.pid"); SID=$PID
alive "$PID" || { show_output; finish START-FAIL; }
[ "$sub" = transition ] && sleep 0.5

# ---- 2. checkpoint + restore ----------------------------------------------
if [ "$CR_CMD" != none ]; then
	export ZDTM_TEST=$id ZDTM_TEST_DIR=$RUN ZDTM_PIDFILE=$RUN/$name.pid ZDTM_ROOT=$R
	export ZDTM_OPTS="$opts --root $R" ZDTM_DOPTS="$dopts" ZDTM_ROPTS="$ropts --pidfile $IMG/restored.pid"
	if [ -n "$HOOK" ]; then
		ZDTM_TEST_PID=$PID run_hook --pre-dump || { echo "hook --pre-dump failed"; show_output; finish CR-FAIL; }
		export ZDTM_PRE_RESTORE="cd $W/hook && PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:\$PATH $HOOK --pre-restore >>$W/hook.log 2>&1 </dev/null"
	fi
	if [[ "$CR_CMD" == *"{pid}"* || "$CR_CMD" == *"{dir}"* ]]; then
		crline=${CR_CMD//\{pid\}/$PID}; crline=${crline//\{dir\}/$IMG}
	else
		crline="$CR_CMD $PID $IMG"
	fi
	echo "+ $crline" >"$W/cr.log"
	( cd "$W" && exec timeout -k 5 "$CR_TIMEOUT" bash -c "$crline" ) >>"$W/cr.log" 2>&1 </dev/null
	rc=$?
	if [ $rc -ne 0 ]; then echo "CR_CMD rc=$rc"; show_output; finish CR-FAIL; fi
	[ -s "$IMG/restored.pid" ] || { echo "no $IMG/restored.pid after restore"; show_output; finish CR-FAIL; }
	PID=$(cat "$IMG/restored.pid")
	alive "$PID" || { echo "pid $PID not alive after restore"; show_output; finish GONE; }
	SID=$(awk '{s=$0; sub(/.*\) /,"",s); split(s,a," "); print a[4]}' /proc/$PID/stat)
	if [ -n "$HOOK" ] && ! ZDTM_TEST_PID=$PID ZDTM_IMG_DIR=$IMG run_hook --post-restore; then
		echo "hook --post-restore failed"; show_output; finish FAIL
	fi
fi

# ---- 3. verify ------------------------------------------------------------
kill -TERM "$PID"
for ((i = 0; i < tmo * 10; i++)); do alive "$PID" || break; sleep 0.1; done
if alive "$PID"; then echo "test did not exit within ${tmo}s after SIGTERM"; show_output; finish TIMEOUT; fi
for _ in $(seq 20); do [ -e "$RUN/$name.out" ] && break; sleep 0.1; done

# ---- 4. verdict -----------------------------------------------------------
if [ -e "$RUN/$name.out" ] && tail -n1 "$RUN/$name.out" | tr -s ' \t' '\n\n' | grep -qx PASS; then
	[ -n "$VERBOSE" ] && show_output
	finish PASS
fi
show_output
finish FAIL
