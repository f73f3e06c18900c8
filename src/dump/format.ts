// The image format version. CRIU's inventory has no field for a writer's own version, so
// stasis tags dump_criu_run_id with it; restore refuses tags it does not know. Bump on any
// change that an older stasis could not read, and note it in CHANGELOG.md.
export const FORMAT_VERSION = 11;
/** The last format that kept socket filter instructions as their struct's bytes, and the IPC next ids in fields of stasis's own. */
export const OWN_FILTERS_UNTIL_FORMAT = 10;
/** The first format whose image sets carry stasis-sums.json. */
export const SUMS_SINCE_FORMAT = 4;
export const FORMAT_TAG = `stasis-format-${FORMAT_VERSION}`;

/** The format version of an image set from its run id; null for images CRIU wrote. */
export function formatVersionOf(runId: string | undefined): number | null {
  const m = /^stasis-format-(\d+)/.exec(runId ?? '');
  return m ? Number(m[1]) : null;
}
