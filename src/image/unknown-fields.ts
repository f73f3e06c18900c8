// Fields an image holds that this stasis's messages do not know (protobuf keeps them as
// $unknown): in an image CRIU wrote, state stasis would restore without, so restore refuses.

export interface UnknownIn {
  /** The message holding them (stasis.image.CoreEntry...). */
  type: string;
  fields: number[];
}

/** Every message of a decoded image with fields it does not know, with their numbers. */
export function unknownFields(content: unknown): UnknownIn[] {
  const out: UnknownIn[] = [];
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    const m = v as { $typeName?: string; $unknown?: { no: number }[] };
    if (m.$typeName && m.$unknown?.length) out.push({ type: m.$typeName, fields: [...new Set(m.$unknown.map((u) => u.no))] });
    for (const [k, x] of Object.entries(v)) if (k !== '$unknown') walk(x);
  };
  walk(content);
  return out;
}
