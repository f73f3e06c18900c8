import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planSessions, sessionRefusal } from './session-plan.js';

const e = (pid: number, ppid: number, pgid: number, sid: number) => ({ pid, ppid, pgid, sid });

test('planSessions(): a child left in the session its parent quit is cloned early; an orphan in a sibling\'s session by that sibling, after it', () => {
  const p = planSessions([e(1, 0, 1, 1), e(3, 1, 1, 1), e(2, 1, 2, 2), e(4, 2, 1, 1)]);
  assert.ok('plan' in p);
  assert.deepEqual([...p.plan.early], [4]);
  assert.deepEqual(p.plan.bySibling.size, 0);
  // 6 is in session 3, led by its sibling 3, which comes first.
  const q = planSessions([e(1, 0, 1, 1), e(6, 1, 3, 3), e(3, 1, 3, 3)]);
  assert.ok('plan' in q);
  assert.deepEqual(q.plan.order.map((x) => x.pid), [1, 3, 6]);
  assert.deepEqual(q.plan.bySibling.get(3)?.map((x) => x.pid), [6]);
});

test('sessionRefusal(): a session led by a task that is neither the parent\'s birth session nor a sibling is named', () => {
  // 7 is in session 5 under 6; 5 is a child of 2, not of 6's parent 1.
  assert.match(sessionRefusal([e(1, 0, 1, 1), e(2, 1, 2, 2), e(5, 2, 5, 5), e(6, 1, 6, 6), e(7, 6, 5, 5)]) ?? '', /^pid 7 is in session 5, led by pid 5, which is not its sibling/);
  assert.equal(sessionRefusal([e(1, 0, 1, 1), e(2, 1, 1, 1)]), undefined);
});
