import { join } from 'node:path';
import { packageRoot } from '../../lib/core/native.js';

/** Path of a test-only BPF object compiled from test/bpf/<name>.bpf.c. */
export function testObject(name: string): string {
  return join(packageRoot(), 'build', 'test-bpf', `${name}.bpf.o`);
}
