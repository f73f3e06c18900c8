// runc's checkpoint and restore of a busybox container (test/cr/containers/runc-kit.ts's
// counter) with CRIU 4.2 and with stasis as its criu, side by side: rounds alternate between
// the two, each on a fresh container; medians of the wall time of `runc checkpoint` and of
// `runc restore -d`, and stasis's ratio to CRIU's (issue 14's target: within 1.5x). CRIU is
// ../shared/criu/criu beside the repo or $STASIS_CRIU; STASIS_BENCH_RUNC_ROUNDS sets the rounds.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COUNTER, inRuncNs, makeBundle, runcUnavailable, stasisAsCriu, waitLines } from '../test/cr/containers/runc-kit.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ROUNDS = Number(process.env.STASIS_BENCH_RUNC_ROUNDS ?? 5);
const say = (s: string) => process.stdout.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const criuBin = process.env.STASIS_CRIU ?? path.resolve(REPO, '../shared/criu/criu');
const why = runcUnavailable() || (fs.existsSync(criuBin) ? false : `no CRIU at ${criuBin} (set STASIS_CRIU)`);
if (why) {
  say(`runc: skipped: ${why}`);
} else {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-runc-'));
  const tools: Record<string, string> = { criu: criuBin, stasis: stasisAsCriu(work, REPO) };
  const names = Object.keys(tools);
  const times = Object.fromEntries(names.map((t) => [t, { ck: [] as number[], rs: [] as number[] }]));
  const bundle = makeBundle(work, COUNTER);
  const count = path.join(bundle, 'rootfs/count');
  try {
    for (let i = 0; i < ROUNDS * names.length; i++) {
      const tool = names[i % names.length]!;
      const d = path.join(work, `r${i}`);
      const id = `stasis-bench-${process.pid}-${i}`;
      fs.rmSync(count, { force: true });
      const ms = '$(( ($(date +%s%N) - t) / 1000000 ))';
      const r = inRuncNs(`
        trap 'runc kill ${id} KILL >/dev/null 2>&1; sleep 0.2; runc delete -f ${id} >/dev/null 2>&1' EXIT
        runc run -d --bundle ${bundle} ${id} </dev/null 2>&1 | cat > ${d}.out &
        ${waitLines(count, 5)}
        t=$(date +%s%N); runc --criu ${tools[tool]} checkpoint --image-path ${d}/img --work-path ${d}/work ${id} || exit 1; echo "ck=${ms}"
        # The restored container holds the pipe to cat: runc's own time goes to a file, not to the pipeline's end.
        { t=$(date +%s%N); runc --criu ${tools[tool]} restore -d --image-path ${d}/img --work-path ${d}/rwork --bundle ${bundle} ${id} </dev/null && echo "rs=${ms}" > ${d}.rs; } 2>&1 | cat >> ${d}.out &
        w=0; until [ -s ${d}.rs ] || { [ -s ${d}/rwork/restore.log ] && grep -q "Error\|error" ${d}/rwork/restore.log 2>/dev/null; }; do w=$((w+1)); [ $w -gt 600 ] && break; sleep 0.05; done
        cat ${d}.rs 2>/dev/null || exit 1
        runc state ${id} | grep -q '"running"' || { echo "not running after the restore"; exit 1; }
      `, 120_000);
      const ck = /ck=(\d+)/.exec(r.stdout), rs = /rs=(\d+)/.exec(r.stdout);
      if (r.status !== 0 || !ck || !rs) throw new Error(`runc with ${tool} failed: ${r.stdout}\n${r.stderr}\n${['work/dump.log', 'rwork/restore.log'].map((f) => (fs.existsSync(path.join(d, f)) ? fs.readFileSync(path.join(d, f), 'utf8').slice(-3000) : '')).join('\n')}`);
      times[tool]!.ck.push(Number(ck[1]));
      times[tool]!.rs.push(Number(rs[1]));
    }
    say(`\nrunc 1.1 checkpoint and restore of a busybox container, ${ROUNDS} rounds each, alternating (medians):`);
    say('| step | CRIU 4.2 | stasis | ratio | target |');
    say('|---|---|---|---|---|');
    for (const [step, k] of [['runc checkpoint', 'ck'], ['runc restore -d', 'rs']] as const) {
      const c = median(times.criu![k]);
      for (const t of names.slice(1)) {
        const s = median(times[t]![k]);
        say(`| ${step}${t === 'stasis' ? '' : ` (${t.slice(8)})`} | ${c} ms | ${s} ms | ${(s / c).toFixed(2)}x | 1.5x |`);
      }
    }
  } catch (e) {
    say(`runc: FAILED: ${(e as Error).message}`);
    process.exitCode = 1;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
