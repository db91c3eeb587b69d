/**
 * The compiled rule set ("blob") shared with bpf/include/acl_blob.h. Keep the two in
 * sync: every constant here has a twin there with the same name (ACL_ prefix in C).
 *
 * A blob is an array of 32-bit words (host byte order):
 *
 *   header   HDR_WORDS words (see H_* offsets)
 *   nodes    decision-tree nodes:
 *              internal: [ctl, child_0 .. child_{2^bits-1}]   ctl = dim | shift<<8 | bits<<16
 *              leaf:     [LEAF | count, rec_0 .. rec_{count-1}] (record word offsets, by priority)
 *   records  one per (rule, src, dst) combination:
 *              [prio, meta, tag, lo_0, hi_0, .. lo_{D-1}, hi_{D-1}]   meta = slot | action<<24
 *              (tag: changes when a slot gets a new rule, so the event rate limiter
 *              does not carry a flow's state over to another rule)
 *   source   the rule set as JSON (UTF-8), so a process adopting a pinned firewall can
 *            read back the rules it enforces
 */

export const BLOB_MAGIC = 0x41434c31; // 'ACL1'
export const BLOB_VERSION = 1;
export const HDR_WORDS = 64;
/** The largest rule set a program variant addresses (bpf/acl_xl.bpf.c). */
export const MAX_BLOB_BYTES = 64 << 20;

/** Header word offsets. */
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_USED = 2; // words in use
export const H_GEN = 3;
export const H_FLAGS = 4; // FLAG_*
export const H_INTERVAL_MS = 5; // event interval per flow
export const H_V4_TREES = 6; // number of IPv4 trees
export const H_V6_TREES = 7;
export const H_V4_ROOTS = 8; // MAX_TREES x (root, best prio)
export const H_V6_ROOTS = 16;
export const H_SRC_OFF = 24; // word offset of the JSON source
export const H_SRC_LEN = 25; // its length in bytes
export const H_RULES = 26; // user rules
export const H_RECORDS = 27; // records (rule x address combinations)
export const H_CREATED_LO = 28; // Date.now() of the compile, low and high 32 bits
export const H_CREATED_HI = 29;

export const FLAG_DEFAULT_DENY = 1;
export const FLAG_EVENTS_DEFAULT = 2; // emit events for default-deny verdicts
export const FLAG_NO_EVENTS = 4; // report nothing (counters only)
export const FLAG_NO_CACHE = 8; // walk the trees for every packet (no verdict cache)

export const MAX_TREES = 4;
export const LEAF = 0x80000000;
/** Longest leaf the BPF program scans. */
export const LEAF_MAX = 32;
/** Deepest tree the BPF program walks. */
export const MAX_DEPTH = 24;
/** Widest cut (bits of one field consumed by one node). */
export const MAX_CUT_BITS = 16;

/** Record actions (meta >> 24). */
export const REC_HDR = 3;
export const ACT_ALLOW = 0;
export const ACT_DENY = 1;
export const ACT_LOG = 2;
export const META_SLOT_MASK = 0xffffff;
/** Event slot of the default action. */
export const SLOT_DEFAULT = 0xffffff;
/** Protocol of a packet whose upper-layer protocol could not be found. */
export const PROTO_UNKNOWN = 256;
export const PROTO_MAX = 511; // the proto dimension is 9 bits wide

/** Dimensions (key words) of each family, in key order. */
export const V4_DIMS = 7; // src, dst, sport, dport, proto, ifindex, l4
export const V6_DIMS = 13; // src[4], dst[4], sport, dport, proto, ifindex, l4
export const V4_WIDTHS: readonly number[] = [32, 32, 16, 16, 9, 32, 1];
export const V6_WIDTHS: readonly number[] = [32, 32, 32, 32, 32, 32, 32, 32, 16, 16, 9, 32, 1];
/** Index of the first of the trailing (sport, dport, proto, ifindex, l4) dims. */
export const V4_PORTS_AT = 2;
export const V6_PORTS_AT = 8;

export function recordWords(dims: number): number {
  return REC_HDR + 2 * dims;
}

/** Per-CPU misc counters (acl_stats), in the order of enum acl_stat. */
export const ACL_STATS = [
  'defaultAllow',
  'defaultDeny',
  'nonIp',
  'unparsed',
  'fragments',
  'malformed',
  'noRules',
  'corrupt',
  'events',
  'suppressed',
  'walks',
  'cached',
] as const;
export type AclStatName = (typeof ACL_STATS)[number];
