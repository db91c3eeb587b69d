// The ACL blob's contract: bpf/include/acl_blob.h is its one source of truth, and
// lib/modules/acl/layout.gen.ts is generated from it (scripts/gen-acl-layout.mjs). This
// checks that the generated file is current, and, independently of the generator, asks
// the C++ compiler whether every constant layout.ts exports equals its twin in the header
// (`X` there is `ACL_X`; ACL_STATS by member name: 'nonIp' is ACL_STAT_NON_IP, at its
// position). Then the one header writer, writeBlobHeader.
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as layout from '../../lib/modules/acl/layout.js';
import {
  BLOB_MAGIC,
  BLOB_VERSION,
  FLAG_DEFAULT_DENY,
  FLAG_NO_EVENTS,
  H_CREATED_HI,
  H_CREATED_LO,
  H_FLAGS,
  H_GEN,
  H_INTERVAL_MS,
  H_MAGIC,
  H_RECORDS,
  H_RULES,
  H_SRC_LEN,
  H_SRC_OFF,
  H_USED,
  H_V4_ROOTS,
  H_V4_TREES,
  H_V6_ROOTS,
  H_V6_TREES,
  H_VERSION,
  HDR_WORDS,
  MAX_TREES,
  ROOT_WORDS,
  writeBlobHeader,
} from '../../lib/modules/acl/layout.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** 'nonIp' -> 'NON_IP' */
function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

/** C++ static assertions, one per twin; each message names the TypeScript constant. */
function assertions(): { source: string; checked: string[] } {
  const lines = ['#include "bpf/include/acl_blob.h"'];
  const checked: string[] = [];
  for (const [name, value] of Object.entries(layout)) {
    if (typeof value === 'function') continue; // recordWords, writeBlobHeader
    if (name === 'ACL_STATS') {
      (value as readonly string[]).forEach((stat, i) => {
        lines.push(`static_assert(ACL_STAT_${snake(stat)} == ${i}, "ACL_STATS[${i}] '${stat}'");`);
      });
      lines.push(`static_assert(ACL_STAT_MAX == ${(value as readonly string[]).length}, "ACL_STATS.length");`);
    } else if (Array.isArray(value)) {
      lines.push(`constexpr unsigned long long twin_${name}[] = ACL_${name};`);
      lines.push(`static_assert(sizeof(twin_${name}) / sizeof(twin_${name}[0]) == ${value.length}, "${name}.length");`);
      value.forEach((v: number, i: number) => lines.push(`static_assert(twin_${name}[${i}] == ${v}ull, "${name}[${i}]");`));
    } else if (typeof value === 'number') {
      lines.push(`static_assert((ACL_${name}) == ${value}ull, "${name}");`);
    } else {
      throw new Error(`layout.ts exports ${name}, neither a number, a list of numbers nor ACL_STATS: give it a twin in acl_blob.h`);
    }
    checked.push(name);
  }
  return { source: `${lines.join('\n')}\n`, checked };
}

describe('ACL blob contract (bpf/include/acl_blob.h <-> lib/modules/acl/layout.ts)', () => {
  it('the generated layout.gen.ts is current', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/gen-acl-layout.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('every constant layout.ts exports has a twin of the same value in the header', () => {
    const { source, checked } = assertions();
    // a missing twin is an undeclared identifier, a different value a failed assertion
    const r = spawnSync('clang++', ['-x', 'c++', '-std=c++17', '-fsyntax-only', '-ferror-limit=0', `-I${ROOT}`, '-'], {
      input: source,
      encoding: 'utf8',
    });
    const failures = r.stderr.split('\n').filter((l) => l.includes('error:'));
    expect(failures).toEqual([]);
    expect(r.status).toBe(0);
    // the assertions cover what the TypeScript side reads
    for (const name of ['BLOB_MAGIC', 'HDR_WORDS', 'H_CREATED_HI', 'MAX_CUT_BITS', 'SLOT_MASK', 'V6_WIDTHS', 'PROTO_MAX', 'ACL_STATS']) {
      expect(checked).toContain(name);
    }
  });

  it('the compiled XDP program counts into as many stats as ACL_STATS names', () => {
    // acl_stats of the object the firewall loads: max_entries = ACL_STAT_MAX, in its BTF as
    // the length of the array the member `max_entries` points to
    interface BtfType {
      id: number;
      kind: string;
      name: string;
      type_id?: number;
      nr_elems?: number;
      members?: { name: string; type_id: number }[];
    }
    const obj = join(ROOT, 'build/bpf/acl.bpf.o');
    const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', obj, 'format', 'raw'], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const types = new Map((JSON.parse(out) as { types: BtfType[] }).types.map((t) => [t.id, t]));
    const v = [...types.values()].find((t) => t.kind === 'VAR' && t.name === 'acl_stats');
    const def = types.get(v!.type_id!);
    const ptr = types.get(def!.members!.find((mb) => mb.name === 'max_entries')!.type_id);
    expect(types.get(ptr!.type_id!)!.nr_elems).toBe(layout.ACL_STATS.length);
  });
});

describe('ACL_STATS', () => {
  it('keeps its public names (the keys of AclFirewall stats): renaming an enum member renames them', () => {
    expect(layout.ACL_STATS).toEqual([
      'defaultAllow',
      'defaultDeny',
      'nonIp',
      'unparsed',
      'fragments',
      'malformed',
      'noRules',
      'corrupt',
      'events',
      'suppressed',
      'walks',
      'cached',
    ]);
  });
});

describe('writeBlobHeader', () => {
  it('writes the format and exactly the fields given', () => {
    const h = new Uint32Array(HDR_WORDS).fill(0xdeadbeef);
    writeBlobHeader(h, { gen: 7, rules: 3 });
    expect(h[H_MAGIC]).toBe(BLOB_MAGIC);
    expect(h[H_VERSION]).toBe(BLOB_VERSION);
    expect(h[H_GEN]).toBe(7);
    expect(h[H_RULES]).toBe(3);
    const untouched = [...h.keys()].filter((i) => ![H_MAGIC, H_VERSION, H_GEN, H_RULES].includes(i));
    expect(untouched.every((i) => h[i] === 0xdeadbeef)).toBe(true);
  });

  it('lays every field where the XDP program and an adopting process read it', () => {
    const h = new Uint32Array(HDR_WORDS);
    const created = 0x123_4567_89ab;
    writeBlobHeader(h, {
      usedWords: 1000,
      gen: 2 ** 32 + 5,
      eventIntervalMs: 250,
      rules: 4,
      records: 9,
      createdMs: created,
      flags: { defaultDeny: true, defaultDenyEvents: false, events: false, verdictCache: true },
      source: { offWords: 900, bytes: 333 },
      v4Trees: [
        { root: 100, prio: 0, ctl: 0x80000002 },
        { root: 200, prio: 5, ctl: 0x00080100 },
      ],
      v6Trees: [{ root: 300, prio: 1, ctl: 7 }],
    });
    expect([h[H_USED], h[H_GEN], h[H_INTERVAL_MS], h[H_RULES], h[H_RECORDS]]).toEqual([1000, 5, 250, 4, 9]);
    expect(h[H_FLAGS]).toBe(FLAG_DEFAULT_DENY | FLAG_NO_EVENTS);
    expect([h[H_SRC_OFF], h[H_SRC_LEN]]).toEqual([900, 333]);
    expect(h[H_CREATED_LO]! + h[H_CREATED_HI]! * 2 ** 32).toBe(created);
    // (root, best prio, root ctl) per tree
    expect([h[H_V4_TREES], ...h.subarray(H_V4_ROOTS, H_V4_ROOTS + 2 * ROOT_WORDS)]).toEqual([2, 100, 0, 0x80000002, 200, 5, 0x00080100]);
    expect([h[H_V6_TREES], ...h.subarray(H_V6_ROOTS, H_V6_ROOTS + ROOT_WORDS)]).toEqual([1, 300, 1, 7]);
    // the families' roots do not overlap, and the last tree's ctl is a header word
    expect(H_V4_ROOTS + MAX_TREES * ROOT_WORDS).toBeLessThanOrEqual(H_V6_ROOTS);
    expect(H_V6_ROOTS + MAX_TREES * ROOT_WORDS).toBeLessThanOrEqual(HDR_WORDS);
  });

  it('refuses a short header and too many trees', () => {
    expect(() => writeBlobHeader(new Uint32Array(HDR_WORDS - 1), {})).toThrow(RangeError);
    const over = Array.from({ length: MAX_TREES + 1 }, (_, i) => ({ root: i, prio: i, ctl: 0 }));
    expect(() => writeBlobHeader(new Uint32Array(HDR_WORDS), { v4Trees: over })).toThrow(new RegExp(`at most ${MAX_TREES}`));
  });
});
