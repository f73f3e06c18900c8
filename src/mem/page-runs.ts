// A run of consecutive pages stored one after another in a pages image.
export interface PageRun {
  vaddr: bigint;
  nrPages: number;
}
