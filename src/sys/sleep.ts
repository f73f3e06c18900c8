// Blocking the calling thread for a while: stasis's steps are synchronous (ptrace and waitpid
// from one thread), and a poll for a state the kernel gives no event for waits here. A futex
// wait on a word no one wakes (Atomics.wait), not a busy loop; no import, so that the worker
// threads' small bundles can take it.
let word: Int32Array | undefined; // made at the first call: the start-up snapshot's build has no SharedArrayBuffer

/** Blocks this thread for `ms` milliseconds. */
export function sleepSync(ms: number): void {
  Atomics.wait((word ??= new Int32Array(new SharedArrayBuffer(4))), 0, 0, ms);
}
