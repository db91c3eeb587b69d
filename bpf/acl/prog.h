// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall XDP program, shared by the size variants bpf/acl*.bpf.c (each defines
 * ACL_BLOB_BYTES, the size of one compiled rule set, before including this file).
 *
 * Per packet: parse Ethernet/VLAN/IPv4/IPv6 (extension headers up to
 * BPFKIT_MAX_IPV6_EXT) and the first bytes of TCP/UDP/SCTP/UDP-Lite/DCCP (ports) or
 * ICMP/ICMPv6 (type, code) into a key of 32-bit words; look up the active rule set
 * through `acl_blobs[0]` ONCE (so a packet is judged by one whole set); walk its
 * decision trees; count; drop on deny; report deny/log decisions through the ring
 * buffer, at most one event per flow and rule per interval.
 *
 * Fields the program cannot read are matched as absent: a non-first fragment or a
 * packet whose L4 header is cut short has l4 = 0 and ports 0, so only rules without
 * port/ICMP selectors can match it; an IPv6 packet whose extension headers cannot be
 * walked also has proto ACL_PROTO_UNKNOWN, which only "any protocol" rules match.
 */
#ifndef ACL_PROG_H
#define ACL_PROG_H

#ifndef ACL_BLOB_BYTES
#error "define ACL_BLOB_BYTES (a power of two) before including acl/prog.h"
#endif

/* maps.h: maps and shared records; parse.h: packet -> key; classify.h: tree walk;
 * vcache.h: the verdict cache in front of it; report.h: rate-limited events */
#include "maps.h"
#include "parse.h"
#include "classify.h"
#include "vcache.h"
#include "report.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* A parsed IP packet of family `fam` (4 or 6) under the rule set `blob`: its verdict, with
 * the rule counter and the event. Inlined once per family with `fam` a constant, so the
 * IPv4 path packs, hashes and compares only the words an IPv4 key has (the compiler drops
 * the terms of the words that are zero) and spills fewer registers. */
static __always_inline int acl_judge(struct xdp_md *ctx, struct acl_pkt *pkt, const __u8 *blob, __u32 flags, __u32 len,
                                     const int fam)
{
	struct acl_verdict vd;
	struct acl_ventry *ve;
	struct acl_vkey vk;
	__u32 action, slot, h;

	acl_vkey_of(&vk, pkt, fam);
	h = acl_flow_set_of(&vk, fam);
	ve = acl_lookup(blob, pkt, &vk, fam, flags, h, &vd);
	if ((vd.meta & ACL_SLOT_MASK) == ACL_VC_NO_RULE) {
		if (!(flags & ACL_FLAG_DEFAULT_DENY)) {
			acl_count(ACL_STAT_DEFAULT_ALLOW, len);
			return XDP_PASS;
		}
		acl_count(ACL_STAT_DEFAULT_DENY, len);
		if ((flags & (ACL_FLAG_EVENTS_DEFAULT | ACL_FLAG_NO_EVENTS)) == ACL_FLAG_EVENTS_DEFAULT)
			acl_report(ctx, pkt, blob, h, ve, &vk, fam, ACL_SLOT_DEFAULT, 0, ACL_ACT_DENY, len);
		return XDP_DROP;
	}
	slot = vd.meta & ACL_SLOT_MASK;
	action = vd.meta >> 24;
	bpfkit_count(bpfkit_cpu_elem(&acl_rule_counters, acl_ctr_slots, slot), len);
	if (action != ACL_ACT_ALLOW && !(flags & ACL_FLAG_NO_EVENTS))
		acl_report(ctx, pkt, blob, h, ve, &vk, fam, slot, vd.tag, action, len);
	return action == ACL_ACT_DENY ? XDP_DROP : XDP_PASS;
}

static __always_inline int acl_frame(struct xdp_md *ctx)
{
	struct acl_pkt pkt;
	__u32 len = ctx->data_end - ctx->data;
	const __u8 *blob;
	__u32 flags;
	int fam;

	__builtin_memset(&pkt, 0, sizeof(pkt));
	fam = acl_parse(ctx, &pkt, len);
	if (fam == 0) {
		acl_count(ACL_STAT_NON_IP, len);
		return XDP_PASS;
	}
	blob = bpfkit_swap_current(&acl_blobs);
	if (!blob || acl_w(blob, ACL_H_MAGIC) != ACL_BLOB_MAGIC) {
		acl_count(ACL_STAT_NO_RULES, len);
		return XDP_PASS;
	}
	flags = acl_w(blob, ACL_H_FLAGS);
	if (fam < 0) {
		acl_count(ACL_STAT_MALFORMED, len);
		return (flags & ACL_FLAG_DEFAULT_DENY) ? XDP_DROP : XDP_PASS;
	}
	if (fam == 4)
		return acl_judge(ctx, &pkt, blob, flags, len, 4);
	return acl_judge(ctx, &pkt, blob, flags, len, 6);
}

/* Alone, the verdict is returned; as an XdpPipeline stage (bpfkit_pipeline_stage set at
 * load), allowed packets continue with the next stage. */
SEC("xdp")
int xdp_acl(struct xdp_md *ctx)
{
	return bpfkit_pipeline_next(ctx, acl_frame(ctx));
}

#endif
