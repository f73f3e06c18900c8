// Bound datagram sockets that are connected (test/workloads/unixdgbound.c): the ends of a
// pair bound after socketpair() (one of them since unlinked), a socket connected to itself,
// a pair with one end bound and datagrams queued on it. After restore each keeps its name
// and its peer, and the paths are as they were.
import { test } from 'node:test';
import { Workload, compileWorkload, checkpointRestore, leaveRunningThenRestore, assertPassed } from '../harness.js';

test('bound datagram sockets connected to a peer, or to themselves, keep their names and peers', async () => {
  const w = new Workload('unixdgbound', compileWorkload('unixdgbound')).start();
  await checkpointRestore(w);
  w.go();
  assertPassed(w.finish());
});

test('a dump that leaves the tree running leaves bound datagram sockets connected as they were', async () => {
  const w = new Workload('unixdgbound-lr', compileWorkload('unixdgbound')).start();
  await leaveRunningThenRestore(w);
});
