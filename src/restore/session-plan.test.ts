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

test('planSessions(): an orphan of the pid namespace\'s init, in the session of a task that is not its sibling, is cloned through that leader\'s helper', () => {
  // zdtm zombie_leader: 6 (a child of 5) leads session 6; 7, its child, was left to the init.
  const p = planSessions([e(1, 0, 1, 1), e(7, 1, 6, 6), e(5, 1, 5, 5), e(6, 5, 6, 6)]);
  assert.ok('plan' in p);
  assert.deepEqual(p.plan.byHelper.get(6)?.map((x) => x.pid), [7]);
  assert.deepEqual(p.plan.order.map((x) => x.pid), [1, 5, 6, 7]);
  // Not without a pid namespace of the tree's own: the root is no init, and 7 would not come back to it.
  assert.match(sessionRefusal([e(100, 0, 100, 100), e(107, 100, 106, 106), e(105, 100, 105, 105), e(106, 105, 106, 106)]) ?? '', /^pid 107 is in session 106, led by pid 106, which is not its sibling/);
});

test('planSessions(): a task is cloned early through two leaders that were born in its session and left it (zdtm session01)', () => {
  // 10 (session 10, born in 2) forks 11 (session 11, born in 2), which forks 12 (session 2).
  const p = planSessions([e(2, 0, 2, 2), e(10, 2, 10, 10), e(11, 10, 11, 11), e(12, 11, 2, 2)]);
  assert.ok('plan' in p);
  assert.deepEqual([...p.plan.early].sort(), [11, 12]);
  // A leader between them that was born in another session cannot be.
  assert.match(sessionRefusal([e(2, 0, 2, 2), e(10, 2, 10, 10), e(11, 10, 11, 11), e(12, 11, 2, 2), e(13, 11, 10, 10)]) ?? '', /^pid 11 would have to be born in both session 2 and session 10/);
});
