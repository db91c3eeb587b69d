/* fentry / fexit on udp_rcv: BPF trampolines, which some kernels refuse (EPERM), at load
 * or at attach. test/core/tracing.test.ts expects ERR_UNSUPPORTED there, counts otherwise. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

__u64 hits = 0;

SEC("fentry/udp_rcv")
int BPF_PROG(enter_udp_rcv, void *skb)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("fexit/udp_rcv")
int BPF_PROG(exit_udp_rcv, void *skb, int ret)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}
