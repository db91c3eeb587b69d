/**
 * The npm tarball as a user gets it: its file list and size, then `npm install
 * <tarball> --ignore-scripts` inside a clean Debian root (test/pack/rootfs.sh: debootstrap
 * minbase, no compiler, cmake, pkg-config, -dev packages or libbpf/libnl/libelf/libz) with
 * the host's node, where an ESM and a CJS script attach XDP in a namespace this test made,
 * count packets and read a map (test/pack/clean-root.sh runs them).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { BUILD_TIMEOUT_MS, REPO, ensurePrebuild, packTarball, sh, type Packed } from './helpers.js';

let packed: Packed;
beforeAll(async () => {
  await ensurePrebuild();
  packed = await packTarball();
}, BUILD_TIMEOUT_MS);
afterAll(() => {
  if (packed) rmSync(dirname(packed.file), { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the runtime, the prebuild, the compiled BPF objects, the licences and the sources of a source build; nothing else', () => {
    const paths = packed.files.map((f) => f.path);
    for (const p of [
      'package.json',
      'dist/index.js',
      'dist/index.cjs',
      'dist/index.d.ts',
      'dist/index.d.cts',
      'dist/lab.js',
      'dist/cli.js',
      `prebuilds/linux-x64/bpfkit.napi.glibc.node`,
      'build/bpf/counter.bpf.o',
      'LICENSES/README.md',
      'LICENSES/libnl.LGPL-2.1.txt',
      'CMakeLists.txt',
      'addon/addon.cc',
      'bpf/counter.bpf.c',
    ]) {
      expect(paths, p).toContain(p);
    }
    // kept on purpose: addon/, bpf/, CMakeLists.txt (a source build where no prebuild fits;
    // the BPF sources also document the programs), the two scripts that build the prebuild
    // (LGPL: rebuild against modified libraries), docs/ (the guides and docs/perf, their benches)
    const allowed =
      /^(package\.json|README\.md|CHANGELOG\.md|CMakeLists\.txt|dist\/[\w.-]+\.(js|cjs|d\.ts|d\.cts)|prebuilds\/[\w-]+\/bpfkit(\.[\w]+)*\.node|build\/bpf\/[\w-]+\.bpf\.o|LICENSES\/[\w.-]+|addon\/.+\.(cc|h)|bpf\/.+\.(c|h)|docs\/(perf\/)?[\w-]+\.md|scripts\/(build-static-deps|prebuild)\.sh)$/;
    for (const p of paths) expect(p, `unexpected file in the tarball: ${p}`).toMatch(allowed);
    expect(paths.filter((p) => /^(test|bench|lib|node_modules|\.cache)\/|\.map$|build\/(Release|test-bpf)/.test(p))).toEqual([]);
  });

  it('is small: under 4 MB packed and 10 MB unpacked', () => {
    console.log(`tarball: ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${packed.files.length} files`);
    expect(packed.size).toBeLessThan(4 << 20);
    expect(packed.unpackedSize).toBeLessThan(10 << 20);
  });
});

describe('npm install <tarball> --ignore-scripts in a clean root', () => {
  let lab: Lab;
  let h: LabHost;
  let out: string;
  const COUNT = 5;
  beforeAll(async () => {
    // one namespace holding both ends of a veth pair: the scripts send out of vp0 to an
    // address whose neighbour entry is vp1's MAC, so each datagram crosses to vp1's XDP
    lab = await Lab.create({ name: 'pack' });
    h = await lab.host('u');
    await h.ip(['link', 'add', 'vp0', 'type', 'veth', 'peer', 'name', 'vp1']);
    for (const i of ['vp0', 'vp1']) await h.exec(['sysctl', '-qw', `net.ipv6.conf.${i}.disable_ipv6=1`]);
    await h.ip(['addr', 'add', '198.18.77.1/29', 'dev', 'vp0']);
    await h.ip(['link', 'set', 'vp0', 'up']);
    await h.ip(['link', 'set', 'vp1', 'up']);
    const [vp1] = await h.ipJson<{ address: string }[]>(['link', 'show', 'vp1']);
    await h.ip(['neigh', 'replace', '198.18.77.6', 'lladdr', vp1!.address, 'dev', 'vp0', 'nud', 'permanent']);
    out = mkdtempSync(join(tmpdir(), 'bpfkit-clean-root-out-'));
    const env = { ...process.env, IFACE: 'vp1', SRC: '198.18.77.1', DST: '198.18.77.6', COUNT: String(COUNT) };
    await sh('bash', [join(REPO, 'test/pack/clean-root.sh'), packed.file, h.netns, out], { env, timeoutMs: 15 * 60_000 });
  }, 16 * 60_000);
  afterAll(async () => {
    await lab?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });
  const read = (f: string) => readFileSync(join(out, f), 'utf8');

  it('the root has no compiler, cmake, pkg-config, -dev packages, nor libbpf/libnl/libelf/libz', () => {
    expect(read('tools.txt').trim()).toBe('');
    const pkgs = read('packages.txt').trim().split('\n');
    expect(pkgs.length).toBeGreaterThan(50); // a real Debian, not an empty directory
    expect(pkgs.filter((p) => /-dev$|^(clang|llvm|gcc|g\+\+|cpp)(-\d+)?$|^(cmake|pkg-?conf|make|binutils|libbpf|libnl|libelf|zlib1g|libpcap)/.test(p))).toEqual(
      [],
    );
    expect(read('ldconfig.txt')).toMatch(/libc\.so\.6/);
    expect(read('ldconfig.txt')).not.toMatch(/libbpf|libnl|libelf|libz\.|libpcap/);
    expect(read('libs.txt').trim()).toBe('');
  });

  it('installs without running any script', () => {
    const log = read('npm-install.txt');
    expect(log).toMatch(/added \d+ packages?/);
    console.log(`npm install: ${/ms (\d+)/.exec(log)?.[1]} ms`);
  });

  for (const kind of ['esm', 'cjs'] as const) {
    it(`${kind}: attaches XDP with the prebuild, counts the packets, reads the map`, () => {
      const r = JSON.parse(read(`${kind}.json`)) as { module: string; mode: string; packets: number; addon: string };
      expect(r.module).toBe(kind);
      expect(r.mode).toBe('native');
      expect(r.packets).toBeGreaterThanOrEqual(COUNT);
      expect(r.addon).toBe('/srv/app/node_modules/bpfkit/prebuilds/linux-x64/bpfkit.napi.glibc.node');
    });
  }

  it('where no addon fits: a BpfkitError naming the packages to install and the build command', () => {
    const r = JSON.parse(read('missing.json')) as { bpfkitError: boolean; code: string; message: string; details: Record<string, string> };
    expect(r.bpfkitError).toBe(true);
    expect(r.code).toBe('ERR_NOT_FOUND');
    expect(r.message).toContain('apt-get install -y clang llvm cmake');
    expect(r.message).toContain('libbpf-dev');
    expect(r.message).toContain("cd '/srv/app/node_modules/bpfkit' && npx --yes cmake-js@7.4.0 build --out build");
    expect(r.details.libc).toBe('glibc');
  });
});
