// Loaded into every test file's process (`node --import`, see package.json). With
// --test-force-exit, Node 20's test runner ends a file's process while its last report may
// still be queued on the pipe to the runner; a report over about 64 KiB (a failure with a long
// message) then reaches the runner cut short, and the runner spins forever on the partial
// message (CI timed out that way). Blocking writes on stdout make each report whole first.
const handle = (process.stdout as unknown as { _handle?: { setBlocking?: (b: boolean) => number } })._handle;
handle?.setBlocking?.(true);
export {};
