/**
 * The kernel feature probes on BTF files made here: what they answer for names present,
 * absent or half-matching, for no BTF or no BPF enums, and the errors built on them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfkitError, VerifierError } from '../../lib/core/errors.js';
import { explainLoadError, helperSupported, kernelBtf, mapTypeSupported, requireMapTypes, requireXdpLink, xdpLinkSupported } from '../../lib/core/features.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-features-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file shaped like BTF: the magic, a zeroed header, then NUL-separated strings. */
function fakeBtf(name: string, strings: string[], magic = 0xeb9f): string {
  const head = Buffer.alloc(24);
  head.writeUInt16LE(magic, 0);
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([head, Buffer.from(`\0${strings.join('\0')}\0`, 'latin1')]));
  return path;
}

// an "old kernel": BPF enums, but no ring buffer, no percpu lookup helper, no XDP links
const OLD = fakeBtf('old', [
  'BPF_MAP_TYPE_HASH',
  'BPF_MAP_TYPE_ARRAY',
  'BPF_MAP_TYPE_LPM_TRIE',
  'BPF_FUNC_map_lookup_elem',
  'BPF_FUNC_ringbuf_output_not',
  'BPF_LINK_TYPE_UNSPEC',
  'BPF_LINK_TYPE_XDP_NOT',
]);
const NEW = fakeBtf('new', [
  'BPF_MAP_TYPE_HASH',
  'BPF_MAP_TYPE_RINGBUF',
  'BPF_FUNC_map_lookup_elem',
  'BPF_FUNC_ringbuf_output',
  'BPF_LINK_TYPE_UNSPEC',
  'BPF_LINK_TYPE_XDP',
]);
const NOT_BTF = fakeBtf('garbage', ['BPF_MAP_TYPE_HASH', 'BPF_LINK_TYPE_UNSPEC'], 0x1234);
const NO_ENUMS = fakeBtf('no-enums', ['task_struct', 'BPF_LINK_TYPE_XDP']);
const MISSING = join(dir, 'missing');

function thrown(fn: () => unknown): BpfkitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfkitError);
    return e as BpfkitError;
  }
  throw new Error('expected a BpfkitError, nothing was thrown');
}

describe('feature probes', () => {
  it('answer from the names the BTF holds, whole names only', () => {
    expect([mapTypeSupported('array', OLD), mapTypeSupported('lpm_trie', OLD), mapTypeSupported('ringbuf', OLD)]).toEqual([true, true, false]);
    expect(mapTypeSupported('ringbuf', NEW)).toBe(true);
    expect(mapTypeSupported('has', OLD)).toBe(false); // a prefix of BPF_MAP_TYPE_HASH
    expect([helperSupported('bpf_map_lookup_elem', OLD), helperSupported('bpf_ringbuf_output', OLD)]).toEqual([true, false]);
    expect(helperSupported('bpf_ringbuf_output', NEW)).toBe(true);
    expect([xdpLinkSupported(OLD), xdpLinkSupported(NEW)]).toEqual([false, true]);
  });

  it('do not know without BTF, without the magic, or without the BPF enums', () => {
    expect(kernelBtf(MISSING)).toBe(false);
    expect(kernelBtf(OLD)).toBe(true);
    for (const p of [MISSING, NOT_BTF, NO_ENUMS]) {
      expect([mapTypeSupported('ringbuf', p), helperSupported('bpf_map_lookup_elem', p), xdpLinkSupported(p)]).toEqual([undefined, undefined, undefined]);
      expect(() => requireXdpLink('attach', p)).not.toThrow();
      expect(() => requireMapTypes([{ name: 'events', type: 'ringbuf' }], p)).not.toThrow();
    }
  });

  it('refuse with ERR_UNSUPPORTED naming the feature', () => {
    const e = thrown(() => requireXdpLink("attach XDP program 'xdp_count'", OLD));
    expect(e.code).toBe('ERR_UNSUPPORTED');
    expect(e.message).toBe("attach XDP program 'xdp_count': the running kernel lacks XDP attachment through bpf_link (BPF_LINK_TYPE_XDP)");
    expect(e.details).toEqual({ feature: 'XDP attachment through bpf_link (BPF_LINK_TYPE_XDP)' });
    expect(() => requireXdpLink('attach', NEW)).not.toThrow();

    const maps = [
      { name: '.rodata', type: 'ringbuf', internal: true },
      { name: 'flows', type: 'hash' },
      { name: 'events', type: 'ringbuf' },
    ];
    const m = thrown(() => requireMapTypes(maps, OLD));
    expect(m.code).toBe('ERR_UNSUPPORTED');
    expect(m.message).toBe("map 'events': the running kernel lacks the map type ringbuf (BPF_MAP_TYPE_RINGBUF)");
    expect(() => requireMapTypes(maps, NEW)).not.toThrow();
  });

  it('turn a verifier refusal of a helper the kernel lacks into ERR_UNSUPPORTED, and nothing else', () => {
    const log =
      '0: R1=ctx() R10=fp0\n; v = bpf_ringbuf_output(...)\n5: (85) call bpf_ringbuf_output#130\nunknown func bpf_ringbuf_output#130\nprocessed 6 insns';
    const refused = new VerifierError('cannot load program', { log, program: 'xdp_events', errno: 22, syscall: 'bpf' });
    const e = explainLoadError(refused, OLD) as BpfkitError;
    expect(e).toBeInstanceOf(BpfkitError);
    expect(e.code).toBe('ERR_UNSUPPORTED');
    expect(e.message).toBe("program 'xdp_events': the running kernel lacks the helper bpf_ringbuf_output");
    expect(e.cause).toBe(refused);
    // the kernel has it (so the program type may not use it), or nobody knows: the verifier's word stands
    expect(explainLoadError(refused, NEW)).toBe(refused);
    expect(explainLoadError(refused, MISSING)).toBe(refused);
    // an older kernel: the helper id is past its list, so it cannot name it
    const old = new VerifierError('cannot load program', { log: '5: (85) call unknown#195\ninvalid func unknown#195\n', program: 'xdp_acl' });
    const o = explainLoadError(old, MISSING) as BpfkitError;
    expect([o.code, o.message, o.cause]).toEqual([
      'ERR_UNSUPPORTED',
      "program 'xdp_acl': the running kernel lacks the helper bpf_map_lookup_percpu_elem (#195)",
      old,
    ]);
    const unnamed = new VerifierError('cannot load program', { log: 'invalid func unknown#999\n' });
    expect((explainLoadError(unnamed, MISSING) as BpfkitError).message).toBe('BPF object: the running kernel lacks the BPF helper #999');
    const other = new VerifierError('cannot load program', { log: 'R1 invalid mem access', program: 'p' });
    expect(explainLoadError(other, OLD)).toBe(other);
    const plain = new BpfkitError('ERR_PERMISSION', 'no');
    expect(explainLoadError(plain, OLD)).toBe(plain);
  });
});
