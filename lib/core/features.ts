/**
 * Kernel feature probes. bpfkit promises features, not kernel versions: before (or right
 * after) an operation that needs one, it asks the running kernel and fails with
 * ERR_UNSUPPORTED naming the missing feature, not with a bare errno from deep inside libbpf.
 *
 * The probes read the kernel's own BTF (/sys/kernel/btf/vmlinux): its enums bpf_map_type,
 * bpf_link_type and bpf_func_id name every map type, link type and helper the running
 * kernel knows (the same list as its UAPI header, backports included). Each answer is
 * true, false, or undefined when the kernel has no BTF to ask (then nothing is refused
 * here and the operation reports its own error). Answers are cached per process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { BpfkitError, VerifierError } from './errors.js';

/** Where the kernel exposes its BTF (CONFIG_DEBUG_INFO_BTF). */
export const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

const BTF_MAGIC = 0xeb9f;
const answers = new Map<string, boolean | undefined>();

/** Whether the kernel exposes its BTF at `path`. */
export function kernelBtf(path = VMLINUX_BTF): boolean {
  return existsSync(path);
}

/**
 * Whether the BTF at `path` names `name` (an enumerator, type or member name: BTF strings
 * are NUL-separated, so only a whole name matches). `sanity` is a name any BTF of a kernel
 * with BPF has (e.g. BPF_MAP_TYPE_HASH): without it, or without BTF, the answer is undefined.
 */
export function btfKnows(name: string, sanity: string, path = VMLINUX_BTF): boolean | undefined {
  const key = `${path}\0${sanity}\0${name}`;
  if (answers.has(key)) return answers.get(key);
  let answer: boolean | undefined;
  try {
    const btf = readFileSync(path);
    if (btf.length >= 24 && btf.readUInt16LE(0) === BTF_MAGIC && btf.includes(`\0${sanity}\0`, 0, 'latin1')) {
      answer = btf.includes(`\0${name}\0`, 0, 'latin1');
    }
  } catch {
    answer = undefined; // no BTF (or not readable): nothing to say
  }
  answers.set(key, answer);
  return answer;
}

/** Whether the kernel has the map type `type`, as libbpf names it ('ringbuf', 'lpm_trie', ...). */
export function mapTypeSupported(type: string, path = VMLINUX_BTF): boolean | undefined {
  return btfKnows(`BPF_MAP_TYPE_${type.toUpperCase()}`, 'BPF_MAP_TYPE_HASH', path);
}

/** Whether the kernel has the helper `name` ('bpf_map_lookup_percpu_elem'). */
export function helperSupported(name: string, path = VMLINUX_BTF): boolean | undefined {
  return btfKnows(`BPF_FUNC_${name.replace(/^bpf_/, '')}`, 'BPF_FUNC_map_lookup_elem', path);
}

/** Whether XDP programs can be attached through a bpf_link (BPF_LINK_TYPE_XDP), as bpfkit does. */
export function xdpLinkSupported(path = VMLINUX_BTF): boolean | undefined {
  return btfKnows('BPF_LINK_TYPE_XDP', 'BPF_LINK_TYPE_UNSPEC', path);
}

/** ERR_UNSUPPORTED naming the missing feature (also in `details.feature`). */
export function unsupported(what: string, feature: string, cause?: unknown): BpfkitError {
  return new BpfkitError('ERR_UNSUPPORTED', `${what}: the running kernel lacks ${feature}`, {
    details: { feature },
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** Throws ERR_UNSUPPORTED unless the kernel can attach XDP through a bpf_link. */
export function requireXdpLink(what: string, path = VMLINUX_BTF): void {
  if (xdpLinkSupported(path) === false) throw unsupported(what, 'XDP attachment through bpf_link (BPF_LINK_TYPE_XDP)');
}

/** Throws ERR_UNSUPPORTED for the first map whose type the kernel does not have. */
export function requireMapTypes(maps: readonly { name: string; type: string; internal?: boolean }[], path = VMLINUX_BTF): void {
  for (const m of maps) {
    if (m.internal) continue;
    if (mapTypeSupported(m.type, path) === false) {
      throw unsupported(`map '${m.name}'`, `the map type ${m.type} (BPF_MAP_TYPE_${m.type.toUpperCase()})`);
    }
  }
}

/**
 * Helpers bpfkit's own programs call that came after XDP itself, by id (enum bpf_func_id):
 * a kernel older than a helper cannot name it in its log ("invalid func unknown#195").
 */
const LATE_HELPERS: Readonly<Record<number, string>> = {
  118: 'bpf_jiffies64',
  130: 'bpf_ringbuf_output',
  131: 'bpf_ringbuf_reserve',
  132: 'bpf_ringbuf_submit',
  133: 'bpf_ringbuf_discard',
  160: 'bpf_ktime_get_coarse_ns',
  188: 'bpf_xdp_get_buff_len',
  195: 'bpf_map_lookup_percpu_elem',
};

/**
 * A verifier refusal for a helper the kernel does not have becomes ERR_UNSUPPORTED naming
 * the helper, the verifier error as its cause. Two forms: a helper id beyond the kernel's
 * list ("invalid func unknown#195"; named from LATE_HELPERS where we know it), or a name
 * the kernel prints but does not provide ("unknown func bpf_x#N", and bpf_x is not in its
 * bpf_func_id; when it is, the program type may not use it and the verifier's word stands).
 * Any other error is returned as it is.
 */
export function explainLoadError(err: unknown, path = VMLINUX_BTF): unknown {
  if (!(err instanceof VerifierError)) return err;
  const who = err.program ? `program '${err.program}'` : 'BPF object';
  const id = /invalid func unknown#(\d+)/.exec(err.log);
  if (id) {
    const name = LATE_HELPERS[Number(id[1])];
    return unsupported(who, name ? `the helper ${name} (#${id[1]})` : `the BPF helper #${id[1]}`, err);
  }
  const m = /unknown func (bpf_\w+)#\d+/.exec(err.log);
  if (!m || helperSupported(m[1], path) !== false) return err;
  return unsupported(who, `the helper ${m[1]}`, err);
}
