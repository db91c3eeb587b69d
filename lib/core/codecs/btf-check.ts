/** Checking a codec against the BTF type of a map key or value. */
import { BpfkitError } from '../errors.js';
import { plural } from './shared.js';
import type { Layout, Codec } from './types.js';

/** A BTF type as described by the native side (typedefs and qualifiers already resolved). */
export interface BtfTypeInfo {
  kind: 'int' | 'struct' | 'union' | 'array' | 'enum' | 'ptr' | 'float' | 'void' | 'other';
  name: string;
  size: number;
  signed?: boolean;
  /** Offsets in bytes; bitfields also carry bitSize (and bitOffset in bits, when known). */
  members?: { name: string; offset: number; bitSize?: number; bitOffset?: number; type: BtfTypeInfo | null }[];
  elem?: BtfTypeInfo | null;
  length?: number;
}

function btfName(t: BtfTypeInfo): string {
  if (t.kind === 'struct' || t.kind === 'union') return `${t.kind} ${t.name || '<anon>'}`;
  if (t.kind === 'array') return `${t.elem ? btfName(t.elem) : '?'}[${t.length ?? '?'}]`;
  return t.name || t.kind;
}

function layoutName(l: Layout): string {
  switch (l.kind) {
    case 'int':
      return `${l.signed ? 'i' : 'u'}${l.size * 8}`;
    case 'bytes':
      return `bytes[${l.size}]`;
    case 'array':
      return `${layoutName(l.elem)}[${l.length}]`;
    case 'struct':
      return `struct ${l.name}`;
  }
}

/** BTF padding/reserved members need not be covered by the codec. */
const isBtfPadding = (name: string): boolean => name === '' || /^(_|pad|reserved)/i.test(name);

interface FlatMember {
  name: string;
  offset: number;
  size: number;
  bitSize?: number;
  type: BtfTypeInfo | null;
}

/** Members of a struct/union with anonymous struct/union members flattened (as C does). */
function flatMembers(t: BtfTypeInfo, base = 0, out: FlatMember[] = []): FlatMember[] {
  for (const m of t.members ?? []) {
    const offset = base + m.offset;
    if (m.name === '' && m.type && (m.type.kind === 'struct' || m.type.kind === 'union')) {
      flatMembers(m.type, offset, out);
      continue;
    }
    let size = m.type?.size ?? 0;
    if (m.bitSize) {
      const firstBit = m.bitOffset !== undefined ? m.bitOffset - 8 * m.offset : 0;
      size = Math.ceil((firstBit + m.bitSize) / 8);
    }
    out.push({ name: m.name, offset, size, bitSize: m.bitSize || undefined, type: m.type });
  }
  return out;
}

/** BTF kinds each (non-bytes) layout kind can describe. */
const MATCHING_KINDS: Record<Layout['kind'], readonly BtfTypeInfo['kind'][]> = {
  bytes: [],
  int: ['int', 'enum'],
  array: ['array'],
  struct: ['struct', 'union'],
};

/** First difference between a codec layout and a BTF type, or null. `path` names the member. */
function diffLayout(l: Layout, t: BtfTypeInfo, path: string): string | null {
  const subject = `${path ? `member ${path}: ` : ''}codec ${layoutName(l)}`;
  if (l.size !== t.size) return `${subject} is ${plural(l.size, 'byte')} but BTF type '${btfName(t)}' is ${plural(t.size, 'byte')}`;
  if (l.kind === 'bytes') return null;
  if (!MATCHING_KINDS[l.kind].includes(t.kind)) return `${subject} (${l.kind}) does not match BTF type '${btfName(t)}' (${t.kind})`;
  if (l.kind === 'array') {
    if (t.length !== undefined && t.length !== l.length) return `${subject} has ${plural(l.length, 'element')} but BTF type '${btfName(t)}' has ${t.length}`;
    return t.elem ? diffLayout(l.elem, t.elem, `${path}[*]`) : null;
  }
  if (l.kind === 'struct') return diffStruct(l, t, path);
  return null;
}

function diffStruct(l: Extract<Layout, { kind: 'struct' }>, t: BtfTypeInfo, path: string): string | null {
  const btf = flatMembers(t);
  if (btf.length === 0) return null; // members not described (nesting too deep): sizes matched
  const where = `BTF type '${btfName(t)}'`;
  for (const m of l.members) {
    const p = path ? `${path}.${m.name}` : m.name;
    const bm = btf.find((b) => b.name === m.name);
    if (!bm) {
      // A member the BTF does not name is fine over bytes the codec cannot name otherwise:
      // compiler/BTF padding (if the member is padding too) or bitfield storage.
      const over = btf.filter((b) => b.offset < m.offset + m.layout.size && m.offset < b.offset + b.size);
      const blocking = over.find((b) => !isBtfPadding(b.name) && !b.bitSize);
      if (!blocking && (isBtfPadding(m.name) || over.some((b) => b.bitSize))) continue;
      return `member ${p} is not in ${where}${blocking ? ` (its bytes overlap ${blocking.name})` : ''}`;
    }
    if (bm.bitSize) return `member ${p} is a ${bm.bitSize}-bit bitfield in ${where}; cover its bytes with a differently named member instead`;
    if (bm.offset !== m.offset) return `member ${p} is at offset ${m.offset} in the codec but at offset ${bm.offset} in ${where}`;
    const d = bm.type ? diffLayout(m.layout, bm.type, p) : null;
    if (d) return d;
  }
  if (t.kind !== 'struct') return null; // a union needs only the members the codec uses
  for (const bm of btf) {
    if (isBtfPadding(bm.name)) continue;
    const covered = l.members.some((m) => m.name === bm.name || (m.offset <= bm.offset && bm.offset + bm.size <= m.offset + m.layout.size));
    if (!covered) {
      const p = path ? `${path}.${bm.name}` : bm.name;
      return `BTF member ${p} (offset ${bm.offset}, ${plural(bm.size, 'byte')}) of ${where} is not covered by the codec`;
    }
  }
  return null;
}

/**
 * Check `codec` against the BTF type of a map key/value (`what` like "map 'counters' key").
 * No BTF: nothing to check. Sizes must match; structs must agree member by member (by name,
 * offset and size, recursively; BTF padding members may be left out); ints ignore signedness;
 * arrays compare length and element; 'bytes' codecs (addresses, lpmKey) match any type of the
 * same size. Throws BpfkitError ERR_CODEC_MISMATCH describing the first difference.
 */
export function checkCodec(codec: Codec<unknown>, btf: BtfTypeInfo | null, what: string): void {
  if (!btf) return;
  const fail = (msg: string): never => {
    throw new BpfkitError('ERR_CODEC_MISMATCH', `${what}: ${msg}`, { details: { codec, btf } });
  };
  if (codec.size !== btf.size) {
    fail(`codec ${codec.name} is ${plural(codec.size, 'byte')} but the map's BTF type '${btfName(btf)}' is ${plural(btf.size, 'byte')}`);
  }
  const diff = diffLayout(codec.layout, btf, '');
  if (diff) fail(diff);
}
