/**
 * The self-contained prebuild (scripts/prebuild.sh): it needs nothing but libc, libm,
 * libstdc++ and libgcc_s, exports only the N-API entry points, is stripped, names no
 * directory of the build machine, and node-gyp-build picks it when there is no local
 * build (and the local build first when there is one).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILD_TIMEOUT_MS, REPO, ensurePrebuild, sh } from './helpers.js';

let file: string;
beforeAll(async () => {
  file = await ensurePrebuild();
}, BUILD_TIMEOUT_MS);

/** The addon file a node process (cwd: the repository) loaded, by /proc/self/maps. */
async function loadedAddon(env: NodeJS.ProcessEnv): Promise<string> {
  const dist = join(REPO, 'dist', 'index.js');
  expect(existsSync(dist), 'dist/ is built (npm test runs scripts/bootstrap.sh first)').toBe(true);
  const js = `const m = await import(${JSON.stringify(dist)});
    m.BpfObject.openBuiltin('counter').close();
    const l = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8').split('\\n').find((x) => x.endsWith('.node'));
    console.log(l.split(/\\s+/).pop());`;
  return (await sh(process.execPath, ['--input-type=module', '-e', js], { env })).trim();
}

describe('prebuilds/<platform>-<arch>/bpfkit.napi.glibc.node', () => {
  it('needs only libc, libm, libstdc++, libgcc_s and the loader', async () => {
    const needed = [...(await sh('readelf', ['-d', file])).matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
    expect(needed.length).toBeGreaterThan(0);
    for (const n of needed) expect(n).toMatch(/^(libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2)$/);
    const ldd = (await sh('ldd', [file]))
      .trim()
      .split('\n')
      .map((l) => l.trim());
    const allowed = /^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|\/lib64\/ld-linux-x86-64\.so\.2)\b/;
    for (const l of ldd) {
      expect(l).not.toMatch(/not found/);
      expect(l, `ldd: ${l}`).toMatch(allowed);
    }
  });

  it('exports only the N-API entry points', async () => {
    const syms = (await sh('nm', ['-D', '--defined-only', file]))
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop());
    expect(syms).toContain('napi_register_module_v1');
    for (const s of syms) expect(s).toMatch(/^(napi_register_module_v1|node_api_module_get_api_version_v1)$/);
  });

  it('leaves undefined only what node (N-API, libuv), libc, libstdc++ and libgcc provide', async () => {
    const undef = (await sh('nm', ['-D', '--undefined-only', file]))
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    // a static archive linked in the wrong order leaves a plain (unversioned) symbol, e.g. elf_nextscn
    for (const [kind, sym] of undef) {
      if (kind === 'w') continue;
      expect(sym).toMatch(/^(napi_\w+|node_api_\w+|uv_\w+|\w+@(GLIBC|GLIBCXX|CXXABI|GCC)_[\d.]+)$/);
    }
  });

  it('is stripped, has no rpath, and names no directory of this machine', async () => {
    const sections = await sh('readelf', ['-S', '-W', file]);
    expect(sections).not.toMatch(/\.symtab|\.debug_info/);
    const dyn = await sh('readelf', ['-d', file]);
    expect(dyn).not.toMatch(/RPATH|RUNPATH/);
    const bytes = readFileSync(file).toString('latin1');
    expect(bytes.includes(REPO)).toBe(false);
  });

  it('is what node-gyp-build loads when there is no local build; a local build comes first', async () => {
    expect(await loadedAddon({ ...process.env, PREBUILDS_ONLY: '1' })).toBe(file);
    if (existsSync(join(REPO, 'build', 'Release', 'bpfkit.node'))) {
      expect(await loadedAddon({ ...process.env, PREBUILDS_ONLY: '' })).toBe(join(REPO, 'build', 'Release', 'bpfkit.node'));
    }
  });
});
