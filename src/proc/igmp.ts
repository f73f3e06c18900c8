// /proc/net/igmp and /proc/net/igmp6: the multicast groups each device of a network namespace
// is in (every socket's joins, and the kernel's own: 224.0.0.1, ff02::1, ff01::1, solicited-node).
// The kernel lists no socket's memberships; these are the candidates to ask each socket about.

/** A group a device is in: the interface's index and name, the group as the kernel's 32-bit words, its joins (sockets' and the kernel's). */
export interface DeviceGroup {
  ifindex: number;
  ifname: string;
  group: number[];
  users: number;
}

/**
 * /proc/net/igmp: a line per device (`1\tlo        :     1      V3`), then a line per group,
 * indented, the group as the be32 printed with %08X (on this little-endian machine, the kernel's
 * word as it is).
 */
export function parseIgmp(text: string): DeviceGroup[] {
  const out: DeviceGroup[] = [];
  let dev: { ifindex: number; ifname: string } | undefined;
  for (const line of text.split('\n').slice(1)) {
    const d = /^(\d+)\s+(\S+)\s*:/.exec(line);
    if (d) {
      dev = { ifindex: Number(d[1]), ifname: d[2]! };
      continue;
    }
    const g = /^\s+([0-9A-Fa-f]{8})\s+(\d+)\s/.exec(line);
    if (g && dev) out.push({ ...dev, group: [parseInt(g[1]!, 16) >>> 0], users: Number(g[2]) });
  }
  return out;
}

/** /proc/net/igmp6: `ifindex name group-as-32-hex-digits users flags timer` a line. */
export function parseIgmp6(text: string): DeviceGroup[] {
  const out: DeviceGroup[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)\s+([0-9a-fA-F]{32})\s+(\d+)\s/.exec(line);
    if (!m) continue;
    const b = Buffer.from(m[3]!, 'hex');
    out.push({ ifindex: Number(m[1]), ifname: m[2]!, group: [0, 1, 2, 3].map((i) => b.readUInt32LE(4 * i)), users: Number(m[4]) });
  }
  return out;
}
