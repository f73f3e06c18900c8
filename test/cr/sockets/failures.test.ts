// Unix sockets stasis cannot restore yet fail the dump with E_UNSUPPORTED naming pid, fd
// and why; no image is left behind and the tree runs on untraced, its sockets as they were.
import { test } from 'node:test';
import { Workload, compileWorkload, assertPassed, assertDumpRefused } from '../harness.js';

const CASES = [
  ['outside', 'its peer is held outside the tree', /is connected to socket:\[\d+\], which no task of the dumped tree holds \(a peer outside the tree\)$/],
  ['rights', 'an fd is in flight on it', /has file descriptors in flight \(SCM_RIGHTS\), not supported yet$/],
  ['creds', 'credentials are in flight on it', /has messages with credentials in flight \(SO_PASSCRED, SCM_CREDENTIALS\), not supported yet$/],
  ['async', 'it has O_ASYNC', /has O_ASYNC set \(signal-driven I\/O\), not supported yet$/],
  ['owner', 'it has an F_SETOWN owner', /has an owner for signals \(F_SETOWN \d+\), not supported yet$/],
  ['pending', 'it listens with a connection not accepted yet whose client sent data', /is listening with a connection not accepted yet from socket:\[\d+\], whose client sent it data \(\d+ bytes of its send buffer in use\), which cannot be read without accepting it, not supported yet$/],
  ['pendingclosed', 'it listens with a connection not accepted yet whose client was closed', /is listening with a connection not accepted yet whose client end was closed, not supported yet$/],
  ['boundsender', 'a datagram from a bound sender is queued on it', /has a datagram queued from the bound socket \/.*\/s\.sock, not supported yet$/],
  ['moved', 'its file was moved to another path', /is bound to \/.*\/r\.sock, whose socket file is now at \/.*\/m\.sock, not supported yet$/],
] as const;

for (const [mode, what, why] of CASES) {
  test(`a Unix socket fails the dump when ${what}, naming pid, fd and why; the tree keeps its socket`, async () => {
    const w = new Workload(`unix-${mode}`, compileWorkload('unixrefuse'), [mode]).start();
    await assertDumpRefused(w, 'E_UNSUPPORTED', [new RegExp(`^Cannot dump fd 5 of pid ${w.pid}: socket:\\[\\d+\\] `), why]);
    w.go();
    assertPassed(w.finish());
  });
}
