/**
 * pcap-filter expressions compiled with libpcap in the addon (addon/pcap.cc) into classic
 * BPF instructions (struct bpf_insn: code u16, jt u8, jf u8, k u32, 8 bytes each, host
 * order), as tcpdump compiles them for a capture on an Ethernet interface.
 */
import { BpfkitError, invalidArgument } from '../errors.js';
import { native } from '../native.js';

/** DLT_EN10MB: Ethernet. */
const DLT_EN10MB = 1;

/**
 * Compiles `expr` for Ethernet. Bad input is ERR_INVALID_ARGUMENT naming `field`, the
 * expression and libpcap's message, before anything reaches the kernel; an addon built
 * without libpcap makes it ERR_UNSUPPORTED.
 */
export function compilePcapFilter(expr: unknown, field: string): Buffer {
  if (typeof expr !== 'string') return invalidArgument(field, `must be a pcap-filter expression (a string), got ${typeof expr}`);
  if (expr.trim() === '') invalidArgument(field, 'is empty (leave it out to match every packet)');
  if (expr.includes('\0')) invalidArgument(field, 'contains a NUL character');
  const out = native().pcapCompile(expr, DLT_EN10MB, 262144);
  if (typeof out === 'string') {
    throw new BpfkitError('ERR_INVALID_ARGUMENT', `${field}: libpcap cannot compile '${expr}': ${out}`, {
      field,
      details: { expression: expr, pcapError: out },
    });
  }
  return out;
}
