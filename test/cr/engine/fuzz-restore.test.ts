// Damaged images are refused, never restored silently wrong: a real image set, one file of it
// mutated at a time (the pages too, which nothing but the checksums can check), restored.
// Each trial either fails with a StasisError before any process exists, or restores a task
// that checks its own memory and passes. Seeded: STASIS_FUZZ_SEED replays a run,
// STASIS_FUZZ_RUNS sets how many trials (default 500).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { Workload, compileWorkload, assertPassed, tmpDir } from '../harness.js';
import { dump, restore, StasisError } from '../../../src/api/index.js';
import { mutation, mutate } from '../../../src/image/mutations.js';

const RUNS = Number(process.env.STASIS_FUZZ_RUNS ?? 500);
const SEED = Number(process.env.STASIS_FUZZ_SEED ?? 0x5eed);
const REFUSED = new Set(['E_CORRUPT', 'E_TRUNCATED', 'E_NO_IMAGE', 'E_BAD_MAGIC']);

test(`${RUNS} mutated image sets are each refused before anything is created, or restore exactly (seed ${SEED})`, { timeout: 300_000 }, async () => {
  const w = new Workload('fuzzheap', compileWorkload('bigheap'), ['1']).start();
  const pristine = tmpDir('fuzz-img');
  await dump({ pid: w.pid, imagesDir: pristine });
  const files = fs.readdirSync(pristine).sort();
  const work = tmpDir('fuzz-work');
  for (const f of files) fs.copyFileSync(path.join(pristine, f), path.join(work, f));
  const outcomes = { refused: 0, restored: 0 };
  const byFile = new Map<string, number>();

  await fc.assert(fc.asyncProperty(fc.constantFrom(...files), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (file, edits) => {
    const good = fs.readFileSync(path.join(pristine, file));
    const bad = mutate(good, edits);
    fs.writeFileSync(path.join(work, file), bad);
    try {
      const r = await restore({ imagesDir: work, detach: true });
      // Accepted: the edits must have left the bytes that matter as they were, and the task proves it.
      outcomes.restored++;
      assert.equal(r.pid, w.pid);
      w.go();
      assertPassed(w.finish());
      for (const f of ['go', 'result']) fs.rmSync(w.file(f), { force: true });
    } catch (e) {
      if (!(e instanceof StasisError)) throw e;
      assert.ok(REFUSED.has(e.code), `${file}: unexpected ${e.code}: ${e.message}`);
      assert.doesNotMatch(e.message, /[\x00-\x1f\x7f]/, 'raw control bytes in the message');
      assert.equal(fs.existsSync(`/proc/${w.pid}`), false, `${file}: the refused restore left pid ${w.pid} behind`);
      outcomes.refused++;
      byFile.set(file, (byFile.get(file) ?? 0) + 1);
    } finally {
      fs.writeFileSync(path.join(work, file), good);
    }
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });

  assert.equal(outcomes.refused + outcomes.restored, RUNS);
  // The work set, every file put back, restores: a refusal above was the damage's doing.
  const r = await restore({ imagesDir: work, detach: true });
  assert.equal(r.pid, w.pid);
  w.go();
  assertPassed(w.finish());
  process.stderr.write(`fuzz: ${RUNS} trials (seed ${SEED}): ${outcomes.refused} refused, ${outcomes.restored} restored exactly; ` +
    `refusals by file: ${[...byFile].map(([f, n]) => `${f} ${n}`).join(', ')}\n`);
});
