// The package as a user gets it: `npm pack` size and file count, and the time of
// `npm install <tarball> --ignore-scripts --offline` into a fresh directory.
//
// The tarball is what `npm pack` makes of this checkout now (dist/, build/bpf and
// prebuilds/ as they are: build first). Install rounds take the dependencies from the local
// npm cache only (--offline; a dependency not in the cache fails the bench, and says so),
// and alternate with the floor of the same run: installing a tarball of an empty package
// with no dependencies (npm's own start-up and bookkeeping). Rows: median ms with spread
// (min..max) and the median of (bpfkit - floor of the same round). Nothing is asserted.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, root } from './lib.mjs';

const npm = (args, cwd) => {
  const r = spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
  });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.status}) in ${cwd}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
};

/** `npm pack` of `dir` into `dest`; returns npm's JSON entry (filename, size, unpackedSize, entryCount, files). */
function pack(dir, dest) {
  const out = npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], dir);
  return JSON.parse(out)[0];
}

function install(tarball, base, i) {
  const dir = join(base, `app-${i}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `app-${i}`, version: '1.0.0', private: true }));
  const t0 = process.hrtime.bigint();
  npm(['install', tarball, '--ignore-scripts', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], dir);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const du = Number(execFileSync('du', ['-sk', join(dir, 'node_modules')], { encoding: 'utf8' }).split('\t')[0]);
  rmSync(dir, { recursive: true, force: true });
  return { ms, kb: du };
}

export default {
  name: 'package',
  description: 'npm pack size and file count; npm install <tarball> --ignore-scripts --offline into a fresh directory vs an empty package',
  async run({ quick, log }) {
    const rounds = quick ? 3 : 9;
    const base = mkdtempSync(join(tmpdir(), 'bpfkit-package-'));
    try {
      const p = pack(root, base);
      const empty = join(base, 'empty');
      mkdirSync(empty);
      writeFileSync(join(empty, 'package.json'), JSON.stringify({ name: 'bpfkit-bench-empty', version: '1.0.0' }));
      const e = pack(empty, base);
      const tarball = join(base, p.filename);
      const emptyTarball = join(base, e.filename);
      const byTop = {};
      for (const f of p.files) {
        const top = f.path.includes('/') ? `${f.path.split('/')[0]}/` : f.path;
        byTop[top] ??= { files: 0, bytes: 0 };
        byTop[top].files++;
        byTop[top].bytes += f.size;
      }
      log(`${p.filename}: ${(p.size / 1024).toFixed(1)} KiB packed, ${(p.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${p.entryCount} files`);

      install(emptyTarball, base, 'warm-empty');
      const first = install(tarball, base, 'warm'); // also checks every dependency is in the cache
      const samples = { bpfkit: [], empty: [], over: [] };
      for (let r = 0; r < rounds; r++) {
        const pair =
          r % 2
            ? [
                ['empty', emptyTarball],
                ['bpfkit', tarball],
              ]
            : [
                ['bpfkit', tarball],
                ['empty', emptyTarball],
              ];
        const got = {};
        for (const [id, t] of pair) got[id] = install(t, base, `${id}-${r}`).ms;
        samples.bpfkit.push(got.bpfkit);
        samples.empty.push(got.empty);
        samples.over.push(got.bpfkit - got.empty);
      }
      const spread = (xs) => `${Math.min(...xs).toFixed(0)}..${Math.max(...xs).toFixed(0)}`;
      const rows = [
        {
          case: 'tarball (npm pack)',
          'KiB packed': p.size / 1024,
          'KiB unpacked': p.unpackedSize / 1024,
          files: p.entryCount,
          'install ms': '',
          spread: '',
          'over empty ms': '',
        },
        ...Object.entries(byTop)
          .sort((a, b) => b[1].bytes - a[1].bytes)
          .map(([top, v]) => ({
            case: `  ${top}`,
            'KiB packed': '',
            'KiB unpacked': v.bytes / 1024,
            files: v.files,
            'install ms': '',
            spread: '',
            'over empty ms': '',
          })),
        {
          case: 'npm install bpfkit tarball',
          'KiB packed': '',
          'KiB unpacked': first.kb,
          files: '',
          'install ms': median(samples.bpfkit),
          spread: spread(samples.bpfkit),
          'over empty ms': median(samples.over),
        },
        {
          case: 'npm install empty tarball (floor)',
          'KiB packed': '',
          'KiB unpacked': '',
          files: '',
          'install ms': median(samples.empty),
          spread: spread(samples.empty),
          'over empty ms': 0,
        },
      ];
      log(`${rounds} install rounds, alternating; node_modules after install: ${first.kb} KiB (du -sk)`);
      return {
        rows,
        summary: {
          packedBytes: p.size,
          unpackedBytes: p.unpackedSize,
          files: p.entryCount,
          installMs: median(samples.bpfkit),
          installOverEmptyMs: median(samples.over),
          nodeModulesKiB: first.kb,
        },
      };
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  },
};
