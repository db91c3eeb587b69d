/**
 * The feature probes against the running kernel: it has everything bpfkit's own programs
 * use, so nothing may be refused, and a name the kernel does not have is answered "no".
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BpfkitError, BpfObject, VerifierError } from '../../lib/index.js';
import { packageRoot } from '../../lib/core/native.js';
import { testObject } from '../helpers/objects.js';
import { helperSupported, kernelBtf, mapTypeSupported, requireMapTypes, requireXdpLink, xdpLinkSupported } from '../../lib/core/features.js';

describe('kernel features', () => {
  it('the kernel has BTF, and the probes find what bpfkit needs', () => {
    expect(kernelBtf()).toBe(true);
    expect(xdpLinkSupported()).toBe(true);
    expect(() => requireXdpLink('attach')).not.toThrow();
    for (const t of ['hash', 'array', 'percpu_array', 'lpm_trie', 'ringbuf', 'array_of_maps']) expect(mapTypeSupported(t), t).toBe(true);
    for (const h of ['bpf_map_lookup_percpu_elem', 'bpf_xdp_get_buff_len', 'bpf_ringbuf_reserve', 'bpf_ktime_get_coarse_ns'])
      expect(helperSupported(h), h).toBe(true);
  });

  it('answers no for names the kernel does not have', () => {
    expect(helperSupported('bpf_no_such_helper')).toBe(false);
    expect(mapTypeSupported('no_such_map')).toBe(false);
  });

  it('every map of every built-in object has a type the kernel knows', () => {
    const names = readdirSync(join(packageRoot(), 'build/bpf'))
      .filter((f) => f.endsWith('.bpf.o'))
      .map((f) => f.slice(0, -6));
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) {
      using obj = BpfObject.openBuiltin(name);
      const maps = obj.maps;
      expect(maps.length, name).toBeGreaterThan(0);
      for (const m of maps) if (!m.internal) expect(mapTypeSupported(m.type), `${name}: ${m.name} (${m.type})`).toBe(true);
      expect(() => requireMapTypes(maps)).not.toThrow();
    }
  });

  it('a program calling a helper the kernel lacks fails with ERR_UNSUPPORTED naming it, the verifier error as cause', async () => {
    const obj = BpfObject.open(testObject('no_helper'));
    try {
      const err = await obj.load().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BpfkitError);
      const e = err as BpfkitError;
      expect(e.code).toBe('ERR_UNSUPPORTED');
      expect(e.message).toMatch(/: the running kernel lacks the BPF helper #9999$/);
      expect(e.cause).toBeInstanceOf(VerifierError);
      expect((e.cause as VerifierError).log).toContain('invalid func unknown#9999');
      expect(obj.loaded).toBe(false);
    } finally {
      obj.close();
    }
  });
});
