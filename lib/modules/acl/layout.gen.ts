// Generated from bpf/include/acl_blob.h by scripts/gen-acl-layout.mjs: do not edit. Change the
// header; the native build regenerates this file (test/unit/acl-blob-contract.test.ts
// checks that it is current and that the C compiler agrees with every value).

/** 'ACL1' */
export const BLOB_MAGIC = 0x41434c31;
/** ACL_H_VERSION: user space refuses to adopt other versions */
export const BLOB_VERSION = 4;
export const HDR_WORDS = 80;
/** The largest rule set a program variant addresses (bpf/acl_xl.bpf.c). */
export const MAX_BLOB_BYTES = 268435456; // (256u << 20)
/**
 * The memory bound per record (one rule x source x destination combination of a family):
 * a family's trees get at most ACL_TREE_WORDS words per record plus ACL_TREE_BASE_WORDS,
 * whatever the rules' shape; what a tree cannot separate within its share goes to
 * further trees (at most ACL_MAX_TREES per family). A variant holds ACL_RULE_BYTES per
 * rule of its capacity (lib/modules/acl/options.ts): a rule without address lists makes
 * at most one IPv4 and one IPv6 record, (ACL_REC_HDR + 2 x dims + ACL_TREE_WORDS) words
 * each, 440 bytes together, and the rest is for its JSON source.
 */
export const TREE_WORDS = 32;
export const TREE_BASE_WORDS = 2048;
export const RULE_BYTES = 1000;
/** Header word offsets (lib/modules/acl/layout.ts writeBlobHeader writes them all). */
export const H_MAGIC = 0;
export const H_VERSION = 1;
/** words in use */
export const H_USED = 2;
/** rule-set generation */
export const H_GEN = 3;
/** ACL_FLAG_* */
export const H_FLAGS = 4;
/** event interval per flow */
export const H_INTERVAL_MS = 5;
/** number of IPv4 trees */
export const H_V4_TREES = 6;
export const H_V6_TREES = 7;
/**
 * The overlay (incremental changes, lib/modules/acl/delta.ts): records added since the
 * compile, checked one by one after the trees. *_OVL_AT: word offset of a list of record
 * word offsets, *_OVL_N: its length (at most ACL_OVL_MAX). A removed rule's records are
 * made unmatchable in place (dimension 0: lo > hi).
 */
export const H_V4_OVL_AT = 8;
export const H_V4_OVL_N = 9;
export const H_V6_OVL_AT = 10;
export const H_V6_OVL_N = 11;
/** byte offset of the overlay's JSON source (0: none) */
export const H_DELTA_OFF = 12;
/** its length in bytes */
export const H_DELTA_LEN = 13;
/** word offset of the JSON source */
export const H_SRC_OFF = 24;
/** its length in bytes */
export const H_SRC_LEN = 25;
/** user rules */
export const H_RULES = 26;
/** records (rule x address combinations) */
export const H_RECORDS = 27;
/** Date.now() of the compile, low and high 32 bits */
export const H_CREATED_LO = 28;
export const H_CREATED_HI = 29;
/**
 * ACL_MAX_TREES x (root, best prio, root ctl): the root node's ctl word (0 when the root is
 * ACL_PTR_EMPTY or ACL_PTR_REC) repeated here, so a walk reads it with the root instead
 * of after it (one load fewer in the chain of dependent loads every tree's walk is)
 */
export const ROOT_WORDS = 3;
export const H_V4_ROOTS = 32;
export const H_V6_ROOTS = 56;
export const FLAG_DEFAULT_DENY = 1;
export const FLAG_EVENTS_DEFAULT = 2;
/** report nothing (counters only) */
export const FLAG_NO_EVENTS = 4;
/** classify every packet by the trees (no verdict cache) */
export const FLAG_NO_CACHE = 8;
/** per family: the partitions, then trees of what they spilled */
export const MAX_TREES = 8;
export const LEAF = 0x80000000;
/** a pointer to an empty leaf (word 0 is the header's, never a node) */
export const PTR_EMPTY = 0;
/** a pointer to one record: a leaf of it, inline */
export const PTR_REC = 0x80000000;
/** longest leaf the program scans */
export const LEAF_MAX = 32;
/** deepest tree the program walks */
export const MAX_DEPTH = 24;
/** widest cut (bits of one field consumed by one node) */
export const MAX_CUT_BITS = 16;
export const REC_HDR = 3;
/** overlay records per family */
export const OVL_MAX = 64;
export const ACT_ALLOW = 0;
export const ACT_DENY = 1;
export const ACT_LOG = 2;
/** a record's meta: slot | action << 24 */
export const SLOT_MASK = 0xffffff;
/** events of the default action */
export const SLOT_DEFAULT = 0xffffff;
/**
 * Key words per family: the dimensions the tree cuts and records bound.
 * src, dst, sport, dport, proto, ifindex, l4
 */
export const V4_DIMS = 7;
/** src[4], dst[4], sport, dport, proto, ifindex, l4 */
export const V6_DIMS = 13;
/** Bits of each dimension, in key order. */
export const V4_WIDTHS: readonly number[] = [32, 32, 16, 16, 9, 32, 1];
export const V6_WIDTHS: readonly number[] = [32, 32, 32, 32, 32, 32, 32, 32, 16, 16, 9, 32, 1];
/** Index of the first of the trailing (sport, dport, proto, ifindex, l4) dimensions. */
export const V4_PORTS_AT = 2;
export const V6_PORTS_AT = 8;
export const KEY_WORDS = 16;
/**
 * The verdict cache keys on the first ACL_VKEY_WORDS key words: the dimensions of either
 * family (never cut beyond word 12) and, in word ACL_VKEY_FAMILY, the family.
 */
export const VKEY_WORDS = 14;
export const VKEY_FAMILY = 13;
export const VCACHE_ENTRIES = 256;
/**
 * proto value of a packet whose upper-layer protocol could not be found (IPv6
 * extension headers truncated or beyond the walk bound): matches only "any".
 */
export const PROTO_UNKNOWN = 256;
/** the proto dimension is 9 bits wide */
export const PROTO_MAX = 511;
/** Per-CPU misc counters (acl_stats): enum acl_stat, in its order, named after its members. */
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
export const EV_L4 = 1;
export const EV_FRAGMENT = 2;
/** bytes of one event record (user space decodes it: lib/modules/acl/events.ts) */
export const EVENT_SIZE = 72;
/**
 * Most CPUs whose cached counts a report adds (CPUs beyond it hand theirs over when
 * their cache entry changes flow).
 */
export const MAX_CPUS = 256;
/** Flows each CPU's rate-limiter memory holds (direct-mapped; a power of two). */
export const FLOW_MEM = 256;
