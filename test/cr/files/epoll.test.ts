// epoll: targets whose fds were closed since they were added come back under the numbers
// they were added by (EPOLL_CTL_DEL by that number still finds them), the fds that now hold
// those numbers keep them; an epoll watching an epoll comes back too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workload, compileWorkload, checkpointRestore, assertPassed } from '../harness.js';
import { readImage } from '../../../src/image/index.js';
import { isFieldSet } from '@bufbuild/protobuf';
import { EventpollTfdEntrySchema } from '../../../src/image/gen/stasis/eventpoll_pb.js';

test('epoll targets added by fds closed since, and an epoll on an epoll, come back under their numbers', async () => {
  const w = new Workload('epolls', compileWorkload('epolls')).start();
  const { images } = await checkpointRestore(w);
  const ep = readImage(images, 'files', undefined).filter((f) => f.epfd).map((f) => f.epfd!);
  const targets = ep.flatMap((e) => e.tfd.map((t) => `${t.tfd}${isFieldSet(t, EventpollTfdEntrySchema.field.addedAs) ? ` as ${t.addedAs}` : ''} data ${t.data}`)).sort();
  // Closed ones are named by the lowest fd holding their file (the pipe's own read end, CRIU's tfd), and the number they were added by.
  assert.deepEqual(targets, ['3 as 50 data 1', '30 data 30', '51 data 2', '7 as 52 data 3']);
  w.go();
  assertPassed(w.finish());
});
