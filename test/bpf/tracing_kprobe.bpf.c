/* A kprobe and a kretprobe: they load on any kernel, and attach only where kprobes exist
 * (test/core/tracing.test.ts expects ERR_UNSUPPORTED on kernels without them). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

__u64 hits = 0;

SEC("kprobe/udp_rcv")
int on_udp_rcv(void *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("kretprobe/udp_rcv")
int on_udp_rcv_ret(void *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}
