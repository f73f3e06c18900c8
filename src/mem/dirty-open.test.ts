import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseBackend, backendProblems } from './dirty-open.js';
import type { KernelFeatures } from '../sys/index.js';

const base: KernelFeatures = {
  release: 'test', zeroPfn: null, kcmp: true, pidfdGetfd: true, clone3SetTid: true, pagemapScan: true, uffdWpAsync: true, softDirty: false, lazyPages: true,
  timerRestoreIds: true,
};

test('chooseBackend() prefers userfaultfd, then soft-dirty, then hashes', () => {
  assert.equal(chooseBackend(base, 'auto', null), backendProblems(base).uffd ? 'hash' : 'uffd');
  assert.equal(chooseBackend({ ...base, uffdWpAsync: false, softDirty: true }, 'auto', null), 'soft-dirty');
  assert.equal(chooseBackend({ ...base, pagemapScan: false }, 'auto', null), 'hash');
});

test('chooseBackend() keeps the backend a chain started with while it can run', () => {
  assert.equal(chooseBackend({ ...base, softDirty: true }, 'auto', 'soft-dirty'), 'soft-dirty');
  assert.equal(chooseBackend(base, 'auto', 'soft-dirty'), chooseBackend(base, 'auto', null));
});

test('chooseBackend() refuses a backend asked for that cannot run, saying why', () => {
  assert.throws(() => chooseBackend(base, 'soft-dirty', null), /soft-dirty.*CONFIG_MEM_SOFT_DIRTY/);
  assert.throws(() => chooseBackend({ ...base, uffdWpAsync: false }, 'uffd', null), /UFFD_FEATURE_WP_ASYNC/);
  assert.equal(chooseBackend(base, 'hash', 'uffd'), 'hash');
});
