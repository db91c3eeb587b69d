/**
 * bpfkit command line: `bpfkit demo` (a namespace lab showing every module live) and
 * `bpfkit status` (what this machine offers bpfkit).
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { parseArgs } from 'node:util';
import { BpfkitError } from './core/errors.js';
import { native, packageRoot } from './core/native.js';
import { possibleCpus } from './core/map.js';
import { helperSupported, kernelBtf, mapTypeSupported, VMLINUX_BTF, xdpLinkSupported } from './core/features.js';
import { isBpffsMounted } from './lab/index.js';
import { runDemo, SECTIONS } from './demo/index.js';

const USAGE = `usage: bpfkit <command> [options]

commands:
  demo [--seconds N] [--only name,...]   run the namespace lab demo (root); sections: ${SECTIONS.map((s) => s.name).join(', ')}
  status                                 show kernel, libbpf and bpffs facts
  help                                   this text`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'demo': {
      const { values } = parseArgs({ args: rest, options: { seconds: { type: 'string' }, only: { type: 'string' } } });
      const seconds = values.seconds ? Number(values.seconds) : 3;
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new BpfkitError('ERR_INVALID_ARGUMENT', `--seconds: expected 1..3600, got ${values.seconds}`);
      const only = values.only ? values.only.split(',') : undefined;
      for (const o of only ?? []) {
        if (!SECTIONS.some((s) => s.name === o)) throw new BpfkitError('ERR_INVALID_ARGUMENT', `--only: unknown section '${o}'`);
      }
      await runDemo({ seconds, ...(only ? { only } : {}) });
      return 0;
    }
    case 'status': {
      const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version: string };
      console.log(`bpfkit      ${pkg.version}`);
      console.log(`kernel      ${release()}`);
      console.log(`libbpf      ${native().libbpfVersion}`);
      console.log(`cpus        ${possibleCpus()} possible`);
      console.log(`bpffs       ${isBpffsMounted() ? 'mounted at /sys/fs/bpf' : 'NOT mounted (mount -t bpf bpf /sys/fs/bpf)'}`);
      const yes = (v: boolean | undefined): string => (v === undefined ? 'unknown' : v ? 'yes' : 'NO');
      console.log(`btf         ${kernelBtf() ? VMLINUX_BTF : 'NO (the feature checks below cannot answer)'}`);
      console.log(`features    xdp bpf_link ${yes(xdpLinkSupported())}, ringbuf ${yes(mapTypeSupported('ringbuf'))}, ` +
        `bpf_map_lookup_percpu_elem ${yes(helperSupported('bpf_map_lookup_percpu_elem'))}, bpf_xdp_get_buff_len ${yes(helperSupported('bpf_xdp_get_buff_len'))}`);
      console.log(`privileges  ${process.getuid?.() === 0 ? 'root' : 'not root: needs CAP_BPF + CAP_NET_ADMIN'}`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`bpfkit: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof BpfkitError) console.error(`bpfkit: ${err.code}: ${err.message}`);
    else console.error(err);
    process.exit(1);
  },
);
