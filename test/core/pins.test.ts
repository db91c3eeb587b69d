/**
 * Maps an object declares LIBBPF_PIN_BY_NAME: where they go (`pinRoot`), that the object
 * names them (`pins`), that a second object reuses them, and that what libbpf creates is
 * root's alone (directory 0700, pin 0600).
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfObject, u32, u64 } from '../../lib/index.js';
import { testObject } from '../helpers/objects.js';

const root = `/sys/fs/bpf/bpfkit-test-pinroot-${process.pid}`;
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('BpfObject pinRoot and pins', () => {
  it('pins by-name maps under pinRoot, names them, and a second object reuses the pinned map', async () => {
    expect(existsSync(root)).toBe(false);
    const a = await BpfObject.load(testObject('pinned_map'), { pinRoot: root });
    const pin = `${root}/shared_counts`;
    expect(a.pins).toEqual([pin]);
    expect(statSync(root).mode & 0o777).toBe(0o700);
    expect(statSync(pin).mode & 0o777).toBe(0o600);
    const ma = a.map('shared_counts', { key: u32, value: u64 });
    ma.set(0, 41n);
    const id = ma.info.id;
    ma.close();
    a.close();
    expect(existsSync(pin)).toBe(true); // pins outlive their object, by design

    const b = await BpfObject.load(testObject('pinned_map'), { pinRoot: root });
    const mb = b.map('shared_counts', { key: u32, value: u64 });
    expect(mb.info.id).toBe(id); // reused, not created again
    expect(mb.get(0)).toBe(41n);
    mb.close();
    b.close();
  });

  it('a bad pinRoot is refused before anything is opened', () => {
    for (const bad of ['relative/dir', '', 5 as never]) {
      expect(() => BpfObject.open(testObject('pinned_map'), { pinRoot: bad })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', field: 'pinRoot' }),
      );
    }
  });
});
