// Peer groups joined across mount namespaces: move_mount(2) with MOVE_MOUNT_SET_GROUP (Linux
// 5.15) puts a private mount in the peer group of another mount of the same superblock whose
// root holds its own, wherever either is (fs/namespace.c do_set_group asks only for
// CAP_SYS_ADMIN over both namespaces): stasis calls it on its own fds on the two mounts.
import { addressOf, keepAlive, syscallRaw } from './libc.js';
import { SyscallError } from './syscall-error.js';

const MOVE_MOUNT_F_EMPTY_PATH = 0x4, MOVE_MOUNT_T_EMPTY_PATH = 0x40, MOVE_MOUNT_SET_GROUP = 0x100;

/** Puts the mount fd `to` is open on into the peer group (and under the master) of the one `from` is open on. */
export function setMountGroup(from: number, to: number): void {
  const empty = Buffer.from('\0');
  const r = syscallRaw('move_mount', from, addressOf(empty), to, addressOf(empty), MOVE_MOUNT_SET_GROUP | MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  keepAlive(empty);
  if (r < 0n) throw new SyscallError('move_mount', Number(-r), 'MOVE_MOUNT_SET_GROUP');
}
