/**
 * pcap-filter expressions for PacketTracer (`filter.pcap`): compiled with libpcap for
 * Ethernet (lib/core/net/pcap.ts) into classic BPF, which the tracer's in-kernel interpreter
 * runs (bpf/tracer/cbpf.h) from its read-only `pcap_insns` array.
 */
import { invalidArgument } from '../../core/errors.js';
import { compilePcapFilter } from '../../core/net/pcap.js';

/** Most instructions a program may have (BPF_MAXINSNS; PCAP_MAX_INSNS in bpf/tracer/cbpf.h). */
export const PCAP_MAX_INSNS = 4096;
/** sizeof(struct cbpf_insn) == sizeof(struct bpf_insn). */
const INSN_SIZE = 8;

/** A compiled expression: its instruction count and the tracer's `pcap_insns` array. */
export interface CompiledPcap {
  expression: string;
  length: number;
  insns: Buffer;
}

/** Compiles `expr` (errors name `field`, the expression and libpcap's message). */
export function compilePcap(expr: unknown, field = 'filter.pcap'): CompiledPcap {
  const out = compilePcapFilter(expr, field);
  const length = out.length / INSN_SIZE;
  if (length > PCAP_MAX_INSNS) invalidArgument(field, `'${String(expr)}' compiles to ${length} instructions; the tracer runs at most ${PCAP_MAX_INSNS}`);
  const insns = Buffer.alloc(PCAP_MAX_INSNS * INSN_SIZE);
  out.copy(insns);
  return { expression: expr as string, length, insns };
}
