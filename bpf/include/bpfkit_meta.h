/* Per-packet metadata bpfkit's XDP programs hand to later stages.
 *
 * XDP cannot set skb->mark, so an XDP stage writes this struct into the packet's
 * metadata area (bpf_xdp_adjust_meta) and a TC ingress program reads it from
 * __sk_buff->data_meta (and may copy `mark` into skb->mark for `ip rule fwmark`).
 *
 * Layout (16 bytes, host byte order, 4-byte aligned), starting at data_meta:
 *
 *   offset 0  __u32 magic   BPFKIT_META_MAGIC: tells our struct from foreign metadata
 *   offset 4  __u32 vni     VXLAN/Geneve VNI of the tunnel the packet came out of (24 bits)
 *   offset 8  __u32 mark    a mark for TC to copy into skb->mark (BPFKIT_META_F_MARK)
 *   offset 12 __u32 flags   BPFKIT_META_F_*
 *
 * The struct is found at data_meta and is valid when data_meta + 16 <= data and the
 * magic matches. Stages that run later add their fields with flags; they never move it.
 * The kernel allows at most 32 bytes of XDP metadata, in multiples of 4.
 */
#ifndef BPFKIT_META_H
#define BPFKIT_META_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define BPFKIT_META_MAGIC 0x424b4d31u /* "BKM1" */

#define BPFKIT_META_F_VNI (1u << 0) /* vni is set: the packet was decapsulated */
#define BPFKIT_META_F_VXLAN (1u << 1) /* ... from VXLAN */
#define BPFKIT_META_F_GENEVE (1u << 2) /* ... from Geneve */
#define BPFKIT_META_F_OUTER_IPV6 (1u << 3) /* ... and the outer header was IPv6 */
#define BPFKIT_META_F_MARK (1u << 4) /* mark is set: TC should copy it to skb->mark */

struct bpfkit_xdp_meta {
	__u32 magic;
	__u32 vni;
	__u32 mark;
	__u32 flags;
};

_Static_assert(sizeof(struct bpfkit_xdp_meta) == 16, "bpfkit_xdp_meta is 16 bytes");

/* Our metadata on an XDP packet, or NULL if there is none. */
static __always_inline struct bpfkit_xdp_meta *bpfkit_xdp_meta_get(struct xdp_md *ctx)
{
	struct bpfkit_xdp_meta *m = (void *)(long)ctx->data_meta;

	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return NULL;
	return m->magic == BPFKIT_META_MAGIC ? m : NULL;
}

/* Our metadata on an XDP packet, created (zeroed, magic set) if missing. Returns NULL
 * when the driver has no metadata support or the headroom is exhausted. Invalidates
 * packet pointers taken before the call when it has to create the struct. */
static __always_inline struct bpfkit_xdp_meta *bpfkit_xdp_meta_ensure(struct xdp_md *ctx)
{
	struct bpfkit_xdp_meta *m = bpfkit_xdp_meta_get(ctx);

	if (m)
		return m;
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
		return NULL;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return NULL;
	m->magic = BPFKIT_META_MAGIC;
	m->vni = 0;
	m->mark = 0;
	m->flags = 0;
	return m;
}

/* Our metadata as a TC program sees it (skb->data_meta), or NULL. */
static __always_inline struct bpfkit_xdp_meta *bpfkit_skb_meta_get(struct __sk_buff *skb)
{
	struct bpfkit_xdp_meta *m = (void *)(long)skb->data_meta;

	if ((void *)(m + 1) > (void *)(long)skb->data)
		return NULL;
	return m->magic == BPFKIT_META_MAGIC ? m : NULL;
}

#endif
