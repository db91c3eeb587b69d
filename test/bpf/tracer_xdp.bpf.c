/* An XDP program that aborts every frame: PacketTracer's xdp_exception point reports it
 * (test/modules/tracer.test.ts). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_abort(struct xdp_md *ctx)
{
	return XDP_ABORTED;
}
