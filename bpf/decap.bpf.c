// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Decapsulator: strips VXLAN (RFC 7348) and Geneve (RFC 8926) outer headers at XDP so
 * the inner frame climbs the stack once, as if it had arrived on the interface.
 *
 * A packet is a tunnel candidate when it is outer IPv4/IPv6 + UDP to one of the
 * configured ports and the UDP header is visible. Every candidate either is
 * decapsulated (XDP_PASS of the inner frame) or passed to the stack unchanged and
 * counted under exactly one reason, checked in this order:
 *
 *   other_host      outer destination MAC is unicast and not the interface's
 *   not_local       strict mode: outer destination address is not a local tunnel address
 *   fragment        outer IPv4 MF set, or an IPv6 fragment header (offset 0)
 *   ip_options      outer IPv4 header has options (IHL > 5)
 *   ipv6_ext        outer IPv6 has extension headers
 *   ip_checksum     outer IPv4 header checksum is wrong
 *   malformed       IP total/payload length < IP + UDP header, UDP length < 8 or > IP payload
 *   truncated       the frame ends before the IP length, or the UDP payload is shorter
 *                   than the tunnel header (and Geneve options) it announces
 *   vxlan_flags     VXLAN I flag clear (no valid VNI)
 *   geneve_version  Geneve version != 0
 *   geneve_oam      Geneve O bit (control packet: must not reach a tenant)
 *   geneve_critical Geneve C bit (critical options we do not understand)
 *   geneve_protocol Geneve protocol type != 0x6558 (only Ethernet payloads)
 *   inner_short     fewer than 14 bytes (an Ethernet header) after the tunnel header
 *   vni_not_allowed VNI allowlist in force and the VNI is not on it
 *
 * Packets that are not candidates (other traffic, later fragments whose UDP header is
 * not in them, IPv6 with more than BPFKIT_MAX_IPV6_EXT extension headers, AH/ESP) pass
 * uncounted. Configuration is swapped atomically: see struct decap_config.
 */
#include "parsing.h"
#include "bpfkit_meta.h"
#include "bpfkit_swap.h"
#include "bpfkit_pipeline.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define DECAP_MAX_PORTS 4 /* UDP ports per protocol */
#define DECAP_MAX_LOCAL 8 /* strict mode: local addresses per family */
#define DECAP_NPROTO 2
#define DECAP_VXLAN 0
#define DECAP_GENEVE 1
#define DECAP_GEN_SHIFT 24 /* vni_allow key: gen << 24 | vni */

#define VXLAN_HLEN 8
#define VXLAN_FLAG_I 0x08
#define GENEVE_HLEN 8
#define GENEVE_VER_MASK 0xc0
#define GENEVE_OPTLEN_MASK 0x3f
#define GENEVE_FLAG_O 0x80
#define GENEVE_FLAG_C 0x40
#define ETH_P_TEB 0x6558 /* Transparent Ethernet Bridging */

/* decap_config.flags */
#define DECAP_F_VNI_ALLOWLIST (1u << 0)
#define DECAP_F_STRICT_DST (1u << 1)
#define DECAP_F_REWRITE_MAC (1u << 2)
#define DECAP_F_METADATA (1u << 3)
#define DECAP_F_CHECK_MAC (1u << 4)

/* counters[] slots */
#define CNT_DECAP 0 /* + proto * 2 + outer_is_ipv6 */
#define CNT_VNI_OVERFLOW 4 /* decapsulated, but no vni_counters slot left for the VNI */
#define CNT_META_FAILED 5 /* decapsulated, but the metadata could not be written */
#define CNT_PASS 8 /* + reason */
#define CNT_SLOTS 32

enum decap_pass_reason {
	PASS_OTHER_HOST,
	PASS_NOT_LOCAL,
	PASS_FRAGMENT,
	PASS_IP_OPTIONS,
	PASS_IPV6_EXT,
	PASS_IP_CHECKSUM,
	PASS_MALFORMED,
	PASS_TRUNCATED,
	PASS_VXLAN_FLAGS,
	PASS_GENEVE_VERSION,
	PASS_GENEVE_OAM,
	PASS_GENEVE_CRITICAL,
	PASS_GENEVE_PROTOCOL,
	PASS_INNER_SHORT,
	PASS_VNI_NOT_ALLOWED,
	PASS_REASONS,
};
_Static_assert(CNT_PASS + PASS_REASONS <= CNT_SLOTS, "counter slots");

/* Everything a packet needs to know, in one map value. User space never edits the
 * value in use: it writes the other of config_a/config_b and swaps the pointer in
 * `config` (an array of maps), which is atomic, and the kernel waits for running
 * programs (synchronize_rcu) before the update syscall returns. The VNI allowlist (too
 * big for the value) is double-buffered by `gen`: entries of the next generation are
 * written before the swap and the old generation's deleted after it. Strict-mode
 * addresses live in the value: a short linear scan is cheaper than a hash lookup. */
struct decap_config {
	__u32 flags;
	__u32 gen; /* 0 or 1 */
	__u32 version; /* +1 per update: tags vni_cache entries */
	__be16 ports[DECAP_NPROTO][DECAP_MAX_PORTS]; /* network order; [0] VXLAN, [1] Geneve */
	__u8 nports[DECAP_NPROTO];
	__u8 mac[6]; /* the receiving interface's MAC */
	__u8 nlocal4;
	__u8 nlocal6;
	__u8 _pad[2];
	__be32 local4[DECAP_MAX_LOCAL]; /* strict mode: local IPv4 tunnel addresses */
	__be32 local6[DECAP_MAX_LOCAL][4]; /* ... and IPv6 ones */
};

_Static_assert(__builtin_offsetof(struct decap_config, mac) % 2 == 0, "mac: 16-bit loads (bpfkit_mac_equal16)");

struct decap_config_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_config);
};

struct decap_config_map config_a SEC(".maps");
struct decap_config_map config_b SEC(".maps");

BPFKIT_SWAP_SLOT_INIT(config, struct decap_config_map, config_a);

/* VNI allowlist: key gen << 24 | vni. Two generations' worth of entries. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} vni_allow SEC(".maps");

/* Per-(VNI, protocol) counters without a hash lookup per packet.
 *
 * A (protocol, VNI) pair gets a slot the first time it is decapsulated: vni_slot maps
 * its key (proto << 24 | vni) to the slot, vni_counters holds the per-CPU counters of
 * each slot. Slots come from next_slot and are never reused or freed while the program
 * is loaded, so a slot always counts for the key that vni_slot names (user space reads
 * the pairs from vni_slot and sums each slot over CPUs). When every slot is taken, new
 * pairs are counted in counters[CNT_VNI_OVERFLOW] and still decapsulated.
 *
 * vni_cache, per CPU and direct-mapped by VNI, remembers what the slow path found for a
 * (protocol, VNI) under one configuration version: the slot, or that the VNI is not on
 * the allowlist. A hit costs one inlined array load and no hash lookup. An entry is
 * valid only for the config version that filled it (user space bumps it on every
 * update), so an allowlist change is seen by the next packet. XDP runs a packet on one
 * CPU without preemption, so a CPU's entries are never written concurrently. */
#define VNI_SLOT_NONE 0xffffffffu /* no slot left: counted as overflow */
#define VNI_SLOT_DENIED 0xfffffffeu /* not on the allowlist (in that version) */
#define VNI_CACHE_SIZE 256
#define VNI_TAG_VALID (1u << 31) /* a zeroed entry never matches */

const volatile __u32 vni_slots = 4096; /* = max_entries of vni_slot / vni_counters */
__u32 next_slot;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* proto << 24 | vni */
	__type(value, __u32); /* slot in vni_counters */
} vni_slot SEC(".maps");

/* CPU c's counter of slot s is element c x vni_slots + s: a plain array used as a per-CPU
 * one (one access a count, where a per-CPU array's lookup loads a per-CPU pointer first),
 * read by user space through its mapping (lib/core/maps/cpu-counters.ts). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4096); /* vni_slots x possible CPUs, set at load */
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} vni_counters SEC(".maps");

struct decap_vni_cache_entry {
	/* decap_config.version it was filled under << 32 | VNI_TAG_VALID | proto << 24 | vni:
	 * one 64-bit compare checks both */
	__u64 key;
	__u32 slot; /* vni_counters slot, VNI_SLOT_NONE or VNI_SLOT_DENIED */
	__u32 _pad;
};

static __always_inline __u64 vni_cache_key(const struct decap_config *cfg, __u32 key)
{
	return (__u64)cfg->version << 32 | VNI_TAG_VALID | key;
}

/* CPU c's entries are elements c x VNI_CACHE_SIZE .. of a plain array (sized to the
 * possible CPUs at load), not a per-CPU array: one access a lookup, where a per-CPU
 * array's inlined lookup loads the element's per-CPU pointer first (the ACL's verdict
 * cache does the same). Each CPU writes only its own 4 KiB. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VNI_CACHE_SIZE); /* x possible CPUs, set at load */
	__type(key, __u32);
	__type(value, struct decap_vni_cache_entry);
} vni_cache SEC(".maps");

/* CPU c's counter of slot s is element c x CNT_SLOTS + s (as vni_counters). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, CNT_SLOTS); /* x possible CPUs, set at load */
	__type(key, __u32);
	__type(value, struct bpfkit_counter);
} counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 bytes)
{
	bpfkit_count(bpfkit_cpu_elem(&counters, CNT_SLOTS, slot), bytes);
}

/* Out of line: the pass-through exits are cold, and inlining them a dozen times tripled
 * the program's size (i-cache footprint) for no gain. */
static __noinline int pass(struct xdp_md *ctx, __u32 reason)
{
	count(CNT_PASS + reason, bpf_xdp_get_buff_len(ctx));
	return XDP_PASS;
}

static __always_inline struct decap_config *get_config(void)
{
	return bpfkit_swap_current(&config);
}

/* DECAP_VXLAN / DECAP_GENEVE if `port` is one of the configured ports, else -1. */
static __always_inline int match_port(const struct decap_config *cfg, __be16 port)
{
#pragma unroll
	for (int p = 0; p < DECAP_NPROTO; p++) {
#pragma unroll
		for (int i = 0; i < DECAP_MAX_PORTS; i++) {
			if (i < cfg->nports[p] && cfg->ports[p][i] == port)
				return p;
		}
	}
	return -1;
}

/* A new slot for `key`, or VNI_SLOT_NONE when they are all taken. Two CPUs racing on one
 * key each take a slot; the loser's stays unused (never in vni_slot, never counted). */
static __always_inline __u32 vni_new_slot(__u32 key)
{
	__u32 slot, *s;

	if (*(volatile __u32 *)&next_slot >= vni_slots) /* no atomic once full */
		return VNI_SLOT_NONE;
	slot = __sync_fetch_and_add(&next_slot, 1);
	if (slot >= vni_slots)
		return VNI_SLOT_NONE;
	if (!bpf_map_update_elem(&vni_slot, &key, &slot, BPF_NOEXIST))
		return slot;
	s = bpf_map_lookup_elem(&vni_slot, &key); /* another CPU inserted it first */
	return s ? *s : VNI_SLOT_NONE;
}

/* The cache miss: allowlist, then the slot (allocated on first use); fills the entry. */
static __noinline __u32 vni_resolve(const struct decap_config *cfg, __u32 vni, __u32 proto,
                                    struct decap_vni_cache_entry *e)
{
	__u32 key = proto << 24 | vni, slot, *s;

	if (cfg->flags & DECAP_F_VNI_ALLOWLIST) {
		__u32 akey = (cfg->gen << DECAP_GEN_SHIFT) | vni;

		if (!bpf_map_lookup_elem(&vni_allow, &akey)) {
			slot = VNI_SLOT_DENIED;
			goto fill;
		}
	}
	s = bpf_map_lookup_elem(&vni_slot, &key);
	slot = s ? *s : vni_new_slot(key);
fill:
	if (e) {
		e->key = vni_cache_key(cfg, key);
		e->slot = slot;
	}
	return slot;
}

/* The vni_counters slot of (proto, vni) under `cfg`, VNI_SLOT_NONE (overflow) or
 * VNI_SLOT_DENIED (allowlist in force, VNI not on it). */
static __always_inline __u32 vni_lookup(const struct decap_config *cfg, __u32 vni, __u32 proto)
{
	__u32 idx = (vni ^ (vni >> 8) ^ proto) & (VNI_CACHE_SIZE - 1);
	struct decap_vni_cache_entry *e = bpfkit_cpu_elem(&vni_cache, VNI_CACHE_SIZE, idx);

	if (e && e->key == vni_cache_key(cfg, proto << 24 | vni))
		return e->slot;
	return vni_resolve(cfg, vni, proto, e);
}

static __always_inline void count_vni(__u32 slot, __u64 bytes)
{
	/* slot < vni_slots first: VNI_SLOT_NONE must not wrap into another CPU's region */
	struct bpfkit_counter *c = slot < vni_slots ? bpfkit_cpu_elem(&vni_counters, vni_slots, slot) : NULL;

	if (c) {
		c->packets++;
		c->bytes += bytes;
	} else {
		count(CNT_VNI_OVERFLOW, bytes);
	}
}

#define META_TUNNEL_FLAGS (BPFKIT_META_F_VNI | BPFKIT_META_F_VXLAN | BPFKIT_META_F_GENEVE | BPFKIT_META_F_OUTER_IPV6)

/* Writes `*v` as the packet's metadata: in place when some is there (an earlier stage's,
 * not taken off by meta_take), else created by bpf_xdp_adjust_meta in one go. Returns
 * false when there is no room or no driver support. */
static __always_inline int put_meta(struct xdp_md *ctx, const struct bpfkit_xdp_meta *v)
{
	struct bpfkit_xdp_meta *m = bpfkit_xdp_meta_get(ctx);

	if (m) {
		m->vni = v->vni;
		m->flags = (m->flags & ~META_TUNNEL_FLAGS) | v->flags;
		return 1;
	}
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
		return 0;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return 0;
	*m = *v;
	return 1;
}

/* When the packet carries our metadata and nothing else (an earlier pipeline stage wrote
 * it), copies it to *v and takes it off: bpf_xdp_adjust_head would otherwise move it with
 * memmove, which costs more than the rest of a decapsulation on some CPUs (15 ns measured,
 * rep movsb). put_meta writes it back. Returns whether it took it. */
static __always_inline int meta_take(struct xdp_md *ctx, struct bpfkit_xdp_meta *v)
{
	struct bpfkit_xdp_meta *m = bpfkit_xdp_meta_get(ctx);

	if (!m || (void *)(m + 1) < (void *)(long)ctx->data)
		return 0;
	*v = *m;
	return !bpf_xdp_adjust_meta(ctx, (int)sizeof(*m));
}

/* Validates the UDP payload (tunnel header, inner frame), then decapsulates.
 * `udp_off` is the UDP header's offset from the frame start; `ulen` the UDP length
 * (already checked against the IP payload and the frame). */
static __always_inline int decap_udp(struct xdp_md *ctx, const struct decap_config *cfg, int proto, struct udphdr *udp,
                                     __u32 udp_off, __u32 ulen, __u32 ipv6)
{
	void *end = (void *)(long)ctx->data_end;
	__u8 *th = (__u8 *)(udp + 1);
	__u32 plen = ulen - sizeof(*udp); /* UDP payload */
	__u32 hlen, vni, inner_off, inner_len, slot;
	struct bpfkit_xdp_meta meta = {};
	int taken = 0;

	if (proto == DECAP_VXLAN) {
		if (plen < VXLAN_HLEN || th + VXLAN_HLEN > (__u8 *)end)
			return pass(ctx, PASS_TRUNCATED);
		if (!(th[0] & VXLAN_FLAG_I))
			return pass(ctx, PASS_VXLAN_FLAGS);
		hlen = VXLAN_HLEN;
	} else {
		if (plen < GENEVE_HLEN || th + GENEVE_HLEN > (__u8 *)end)
			return pass(ctx, PASS_TRUNCATED);
		if (th[0] & GENEVE_VER_MASK)
			return pass(ctx, PASS_GENEVE_VERSION);
		if (th[1] & GENEVE_FLAG_O)
			return pass(ctx, PASS_GENEVE_OAM);
		if (th[1] & GENEVE_FLAG_C)
			return pass(ctx, PASS_GENEVE_CRITICAL);
		if (*(__be16 *)(th + 2) != bpf_htons(ETH_P_TEB))
			return pass(ctx, PASS_GENEVE_PROTOCOL);
		hlen = GENEVE_HLEN + (th[0] & GENEVE_OPTLEN_MASK) * 4;
		if (plen < hlen)
			return pass(ctx, PASS_TRUNCATED);
	}
	/* VXLAN: VNI in bytes 4..6; Geneve: same place */
	vni = ((__u32)th[4] << 16) | ((__u32)th[5] << 8) | th[6];
	if (plen - hlen < ETH_HLEN)
		return pass(ctx, PASS_INNER_SHORT);
	slot = vni_lookup(cfg, vni, proto);
	if (slot == VNI_SLOT_DENIED)
		return pass(ctx, PASS_VNI_NOT_ALLOWED);

	inner_off = udp_off + sizeof(*udp) + hlen;
	inner_len = plen - hlen;
	/* Drop bytes after the UDP datagram (Ethernet padding, trailers) so the inner frame
	 * ends where the tunnel said it does. */
	if ((void *)udp + ulen < end) {
		__u64 total = bpf_xdp_get_buff_len(ctx);
		__u32 want = udp_off + ulen;

		if (total > want && bpf_xdp_adjust_tail(ctx, -(int)(total - want)))
			return pass(ctx, PASS_TRUNCATED);
	}
	if (cfg->flags & DECAP_F_METADATA) {
		taken = meta_take(ctx, &meta);
		if (!taken)
			meta.magic = BPFKIT_META_MAGIC; /* mark and flags 0 */
	}
	if (bpf_xdp_adjust_head(ctx, (int)inner_off)) {
		if (taken && !put_meta(ctx, &meta)) /* give back what meta_take took, unchanged */
			count(CNT_META_FAILED, 0);
		return pass(ctx, PASS_TRUNCATED);
	}
	meta.flags &= ~META_TUNNEL_FLAGS;

	if (cfg->flags & DECAP_F_REWRITE_MAC) {
		struct ethhdr *eth = (void *)(long)ctx->data;

		if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
			return XDP_PASS; /* cannot happen: adjust_head keeps >= ETH_HLEN */
		if (!bpfkit_mac_is_group(eth->h_dest))
			bpfkit_mac_copy16(eth->h_dest, cfg->mac);
	}
	if (cfg->flags & DECAP_F_METADATA) {
		meta.vni = vni;
		meta.flags |= BPFKIT_META_F_VNI | (proto == DECAP_VXLAN ? BPFKIT_META_F_VXLAN : BPFKIT_META_F_GENEVE) |
		              (ipv6 ? BPFKIT_META_F_OUTER_IPV6 : 0);
		if (!put_meta(ctx, &meta))
			count(CNT_META_FAILED, inner_len);
	}
	count(CNT_DECAP + proto * 2 + ipv6, inner_len);
	count_vni(slot, inner_len);
	return XDP_PASS;
}

static __always_inline int is_local4(const struct decap_config *cfg, __be32 daddr)
{
#pragma unroll
	for (int i = 0; i < DECAP_MAX_LOCAL; i++) {
		if (i < cfg->nlocal4 && cfg->local4[i] == daddr)
			return 1;
	}
	return 0;
}

static __always_inline int is_local6(const struct decap_config *cfg, const struct ipv6hdr *ip6)
{
	const __be32 *d = ip6->daddr.in6_u.u6_addr32;
	__be32 d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];

#pragma unroll
	for (int i = 0; i < DECAP_MAX_LOCAL; i++) {
		const __be32 *l = cfg->local6[i];

		if (i < cfg->nlocal6 && !((l[0] ^ d0) | (l[1] ^ d1) | (l[2] ^ d2) | (l[3] ^ d3)))
			return 1;
	}
	return 0;
}

static __always_inline int other_host(const struct decap_config *cfg, const struct ethhdr *eth)
{
	return (cfg->flags & DECAP_F_CHECK_MAC) && !bpfkit_mac_is_group(eth->h_dest) &&
	       !bpfkit_mac_equal16(eth->h_dest, cfg->mac);
}

/* The UDP header at the cursor, when it goes to a configured tunnel port: returns
 * DECAP_VXLAN or DECAP_GENEVE and sets *udpp and *cfgp; -1 when the packet is not a
 * tunnel candidate. */
static __always_inline int candidate(struct bpfkit_cursor *c, struct udphdr **udpp, struct decap_config **cfgp)
{
	struct udphdr *udp = bpfkit_parse_udp(c);
	struct decap_config *cfg;

	if (!udp)
		return -1;
	cfg = get_config();
	if (!cfg)
		return -1;
	*udpp = udp;
	*cfgp = cfg;
	return match_port(cfg, udp->dest);
}

static __always_inline int decap_ipv4(struct xdp_md *ctx, struct bpfkit_cursor *c, struct ethhdr *eth, __u32 l3_off)
{
	struct iphdr *iph;
	struct udphdr *udp;
	struct decap_config *cfg;
	__u32 tot, ulen;
	int proto;

	if (bpfkit_parse_ipv4(c, &iph) != IPPROTO_UDP || bpfkit_ipv4_is_later_fragment(iph))
		return XDP_PASS;
	proto = candidate(c, &udp, &cfg);
	if (proto < 0)
		return XDP_PASS;

	/* a tunnel candidate from here on: every exit is counted */
	if (other_host(cfg, eth))
		return pass(ctx, PASS_OTHER_HOST);
	if ((cfg->flags & DECAP_F_STRICT_DST) && !is_local4(cfg, iph->daddr))
		return pass(ctx, PASS_NOT_LOCAL);
	if (bpfkit_ipv4_is_fragment(iph))
		return pass(ctx, PASS_FRAGMENT);
	if (iph->ihl != 5)
		return pass(ctx, PASS_IP_OPTIONS);
	if (!bpfkit_ipv4_csum_ok(iph))
		return pass(ctx, PASS_IP_CHECKSUM);
	tot = bpf_ntohs(iph->tot_len);
	if (tot < sizeof(*iph) + sizeof(*udp))
		return pass(ctx, PASS_MALFORMED);
	if ((void *)iph + tot > (void *)(long)ctx->data_end)
		return pass(ctx, PASS_TRUNCATED);
	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) || ulen > tot - sizeof(*iph))
		return pass(ctx, PASS_MALFORMED);
	return decap_udp(ctx, cfg, proto, udp, l3_off + sizeof(*iph), ulen, 0);
}

static __always_inline int decap_ipv6(struct xdp_md *ctx, struct bpfkit_cursor *c, struct ethhdr *eth, __u32 l3_off)
{
	struct bpfkit_ipv6_ext_info ext = {};
	struct ipv6hdr *ip6;
	struct udphdr *udp;
	struct decap_config *cfg;
	__u32 plen, ulen;
	int proto, nh;

	nh = bpfkit_parse_ipv6(c, &ip6);
	if (nh < 0)
		return XDP_PASS;
	if (nh != IPPROTO_UDP) {
		if (!bpfkit_ipv6_is_ext(nh))
			return XDP_PASS;
		if (bpfkit_skip_ipv6_ext(c, nh, &ext) != IPPROTO_UDP || ext.frag_offset)
			return XDP_PASS;
	}
	proto = candidate(c, &udp, &cfg);
	if (proto < 0)
		return XDP_PASS;

	if (other_host(cfg, eth))
		return pass(ctx, PASS_OTHER_HOST);
	if ((cfg->flags & DECAP_F_STRICT_DST) && !is_local6(cfg, ip6))
		return pass(ctx, PASS_NOT_LOCAL);
	if (ext.fragment)
		return pass(ctx, PASS_FRAGMENT);
	if (ext.count)
		return pass(ctx, PASS_IPV6_EXT);
	plen = bpf_ntohs(ip6->payload_len);
	if (plen < sizeof(*udp))
		return pass(ctx, PASS_MALFORMED);
	if ((void *)(ip6 + 1) + plen > (void *)(long)ctx->data_end)
		return pass(ctx, PASS_TRUNCATED);
	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) || ulen > plen)
		return pass(ctx, PASS_MALFORMED);
	return decap_udp(ctx, cfg, proto, udp, l3_off + sizeof(*ip6), ulen, 1);
}

static __always_inline int decap_frame(struct xdp_md *ctx)
{
	struct bpfkit_cursor c = bpfkit_cursor_xdp(ctx);
	struct ethhdr *eth;
	__u32 vlans = 0;
	int l3 = bpfkit_parse_eth(&c, &eth, &vlans);
	__u32 l3_off = sizeof(*eth) + vlans * sizeof(struct bpfkit_vlan_hdr);

	if (l3 == ETH_P_IP)
		return decap_ipv4(ctx, &c, eth, l3_off);
	if (l3 == ETH_P_IPV6)
		return decap_ipv6(ctx, &c, eth, l3_off);
	return XDP_PASS;
}

/* Alone, the verdict is returned; as an XdpPipeline stage (bpfkit_pipeline_stage set at
 * load), XDP_PASS continues with the next stage. */
SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	return bpfkit_pipeline_next(ctx, decap_frame(ctx));
}
