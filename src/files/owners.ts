// Owners of files the images make again (ghost files, memfds and shared memory, pty slaves,
// Unix socket files, a socket pair's peer credentials), translated between the tree's user
// namespace and stasis's. The images hold them as the tree's tasks see them (CRIU's
// userns_uid()); stasis reads and sets them in its own view. The translation is ns/user.ts's.
import { isFieldSet } from '@bufbuild/protobuf';
import { TtyInfoEntrySchema, type TtyInfoEntry } from '../image/gen/stasis/tty_pb.js';
import type { UnixSkEntry } from '../image/gen/stasis/sk-unix_pb.js';
import type { GhostFileEntry } from '../image/gen/stasis/ghost-file_pb.js';
import { StasisError } from '../errors.js';

/** uids and gids from one view to the other (throws for an id the other lacks). */
export interface Owners {
  uid(id: number): number;
  gid(id: number): number;
}

export const SAME_OWNERS: Owners = { uid: (u) => u, gid: (g) => g };

type Owned = { uid: number; gid: number };

/** Translates the owner of each of `items` in place; `what` names one in a refusal. */
export function translateOwners(v: Owners, items: Iterable<{ owned: Owned | undefined; what: string }>, code: 'E_UNSUPPORTED' | 'E_RESTORE_FAILED'): void {
  for (const { owned, what } of items) {
    if (!owned) continue;
    try {
      const uid = v.uid(owned.uid), gid = v.gid(owned.gid);
      owned.uid = uid;
      owned.gid = gid;
    } catch (err) {
      throw new StasisError(code, `${what}: ${(err as Error).message}`);
    }
  }
}

export function ttyOwners(infos: Iterable<TtyInfoEntry>): { owned: Owned | undefined; what: string }[] {
  return [...infos].filter((i) => isFieldSet(i, TtyInfoEntrySchema.field.uid)).map((i) => ({ owned: i as Owned, what: `the pty slave of tty info ${i.id}` }));
}

export function unixOwners(entries: Iterable<UnixSkEntry>): { owned: Owned | undefined; what: string }[] {
  return [...entries].flatMap((u) => [
    { owned: u.filePerms, what: `the socket file of Unix socket ${u.ino}` },
    { owned: u.peerCred, what: `the peer credentials of Unix socket ${u.ino}` },
  ]);
}

export function ghostOwners(heads: Iterable<{ id: number; head: GhostFileEntry }>): { owned: Owned | undefined; what: string }[] {
  return [...heads].map((g) => ({ owned: g.head, what: `ghost file ${g.id}` }));
}
