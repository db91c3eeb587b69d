/* PacketTracer's pcap-filter expressions: a classic BPF (cBPF) interpreter.
 *
 * lib/modules/tracer/pcap.ts compiles the expression with libpcap for Ethernet
 * (pcap_open_dead(DLT_EN10MB) + pcap_compile) and sets the instructions as read-only data
 * before load: pcap_len 0 (no expression) makes the verifier drop all of this.
 *
 * The interpreter runs one instruction per bpf_loop() iteration (the verifier checks the
 * step once, whatever the program's length, and inlines the loop). cBPF jumps go forward
 * only, so pc increases every step and the loop is bounded by the program's length; a
 * program that falls off its end, divides by zero or loads outside the packet rejects it,
 * as libpcap's and the kernel's interpreters do.
 *
 * The packet seen is pcap's Ethernet view: from the sk_buff's MAC header when it has one
 * (mac_header set and before the network header). An sk_buff without one (a packet not yet
 * given its link header, or from a device without one) is shown as a pseudo Ethernet
 * header (zero addresses, skb->protocol as its type) followed by the network header, as
 * pwru does; an sk_buff with neither is not a packet and never matches. Bytes are read
 * from the linear data only (head .. tail): a load past it rejects the packet.
 *
 * The expression runs where a packet enters a device (receive, queue), once per packet
 * while the bytes it reads stay the same (pcap_replay); its verdict is remembered for the
 * packet's end (drop, consume) on the same CPU (see pcap_memo below).
 */
#ifndef BPFKIT_TRACER_CBPF_H
#define BPFKIT_TRACER_CBPF_H

#include <linux/filter.h> /* BPF_CLASS, BPF_SIZE, ..., BPF_TAX, BPF_TXA */

#define PCAP_MAX_INSNS 4096 /* BPF_MAXINSNS: the most a cBPF program may have */

struct cbpf_insn {
	__u16 code;
	__u8 jt;
	__u8 jf;
	__u32 k;
};

const volatile __u32 pcap_len = 0;
const volatile struct cbpf_insn pcap_insns[PCAP_MAX_INSNS] = {};

/* A load the expression made: where, how wide, what it read (see pcap_replay). */
#define CBPF_TRACE 8
struct cbpf_rec {
	__u32 off;
	__u32 size;
	__u32 val;
};

/* The machine: registers, scratch memory, and the packet view. Per CPU (not on the stack):
 * every access is a bounded map-value access. */
struct cbpf_vm {
	__u64 base; /* address of view byte 0; pseudo view: of the network header - 14 */
	__u32 caplen; /* view bytes readable (linear data) */
	__u32 wirelen; /* view bytes in all (BPF_LEN) */
	__u32 A;
	__u32 X;
	__u32 pc;
	__u32 ret;
	__u32 M[16];
	__u8 pseudo; /* bytes 0..13 come from eth[] */
	__u8 eth[14];
	__u8 pad;
	__u32 nloads; /* loads made (CBPF_TRACE + 1: too many, or one faulted) */
	struct cbpf_rec trace[CBPF_TRACE]; /* the first CBPF_TRACE of them, in order */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cbpf_vm);
} cbpf_scratch SEC(".maps");

/* What each step is given (on the caller's stack): the machine, and the view's byte 0 as a
 * pointer into the packet for direct loads (headers.h, probe_reads). */
struct cbpf_ctx {
	struct cbpf_vm *vm;
	const unsigned char *base;
};

/* size bytes (1, 2, 4) of the view at off, big-endian, into *out; -1 outside the packet,
 * -2 a fault (probe_reads). */
static __always_inline int cbpf_fetch(struct cbpf_ctx *c, __u32 off, __u32 size, __u32 *out)
{
	struct cbpf_vm *vm = c->vm;
	__u8 b[4] __attribute__((aligned(4))) = {};

	if (off > vm->caplen || size > vm->caplen - off)
		return -1;
	if (vm->pseudo && off < 14) {
		if (off + size > 14)
			return -1; /* straddles the pseudo header: libpcap never loads so */
		for (__u32 i = 0; i < 4; i++) {
			__u32 o = off + i;

			if (i < size && o < 14)
				b[i] = vm->eth[o];
		}
	} else if (!probe_reads) {
		/* the view's linear data is never 512 MiB: off is below that (and the verifier
		 * wants the pointer's offset bounded) */
		const unsigned char *q = c->base + (off & ((1u << 29) - 1));
		__u64 v;

		/* in asm: clang would otherwise share a load between this pointer and the
		 * machine's (a map value), which the verifier refuses */
		if (size == 4) {
			asm volatile("%0 = *(u32 *)(%1 + 0)" : "=r"(v) : "r"(q));
			*out = bpf_ntohl((__u32)v);
		} else if (size == 2) {
			asm volatile("%0 = *(u16 *)(%1 + 0)" : "=r"(v) : "r"(q));
			*out = bpf_ntohs((__u16)v);
		} else {
			asm volatile("%0 = *(u8 *)(%1 + 0)" : "=r"(v) : "r"(q));
			*out = (__u8)v;
		}
		return 0;
	} else if (size == 4) {
		if (bpf_probe_read_kernel(b, 4, (void *)(vm->base + off)))
			return -2;
	} else if (size == 2) {
		if (bpf_probe_read_kernel(b, 2, (void *)(vm->base + off)))
			return -2;
	} else if (bpf_probe_read_kernel(b, 1, (void *)(vm->base + off))) {
		return -2;
	}
	if (size == 4)
		*out = (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
	else if (size == 2)
		*out = (__u32)b[0] << 8 | b[1];
	else
		*out = b[0];
	return 0;
}

/* cbpf_fetch, recorded in the machine's trace (a fault makes the run one not to replay). */
static __always_inline int cbpf_load(struct cbpf_ctx *c, __u32 off, __u32 size, __u32 *out)
{
	struct cbpf_vm *vm = c->vm;
	int err = cbpf_fetch(c, off, size, out);
	__u32 n = vm->nloads;

	if (err == -2) {
		vm->nloads = CBPF_TRACE + 1;
	} else if (!err && n < CBPF_TRACE) {
		vm->trace[n].off = off;
		vm->trace[n].size = size;
		vm->trace[n].val = *out;
		vm->nloads = n + 1;
	} else if (!err) {
		vm->nloads = CBPF_TRACE + 1;
	}
	return err;
}

static __always_inline long cbpf_reject(struct cbpf_vm *vm)
{
	vm->ret = 0;
	return 1;
}

static __always_inline __u32 cbpf_alu(__u16 op, __u32 a, __u32 v, int *bad)
{
	switch (op) {
	case BPF_ADD:
		return a + v;
	case BPF_SUB:
		return a - v;
	case BPF_MUL:
		return a * v;
	case BPF_DIV:
		if (!v)
			*bad = 1;
		return v ? a / v : 0;
	case BPF_MOD:
		if (!v)
			*bad = 1;
		return v ? a % v : 0;
	case BPF_OR:
		return a | v;
	case BPF_AND:
		return a & v;
	case BPF_XOR:
		return a ^ v;
	case BPF_LSH:
		return v < 32 ? a << v : 0;
	case BPF_RSH:
		return v < 32 ? a >> v : 0;
	case BPF_NEG:
		return -a;
	default:
		*bad = 1;
		return 0;
	}
}

/* One instruction (the bpf_loop callback): 0 to go on, 1 when the program returned. */
static long cbpf_step(__u64 i, void *ctx)
{
	struct cbpf_ctx *c = ctx;
	struct cbpf_vm *vm = c->vm;
	__u32 pc, k, v = 0;
	__u16 code;
	__u8 jt, jf;
	int bad = 0;

	pc = vm->pc;
	if (pc >= pcap_len || pc >= PCAP_MAX_INSNS)
		return cbpf_reject(vm); /* fell off the end */
	code = pcap_insns[pc].code;
	jt = pcap_insns[pc].jt;
	jf = pcap_insns[pc].jf;
	k = pcap_insns[pc].k;
	vm->pc = pc + 1;
	switch (BPF_CLASS(code)) {
	case BPF_LD:
	case BPF_LDX: {
		__u32 size = BPF_SIZE(code) == BPF_W ? 4 : BPF_SIZE(code) == BPF_H ? 2 : 1;

		switch (BPF_MODE(code)) {
		case BPF_ABS:
			if (cbpf_load(c, k, size, &v))
				return cbpf_reject(vm);
			break;
		case BPF_IND:
			if (cbpf_load(c, vm->X + k, size, &v))
				return cbpf_reject(vm);
			break;
		case BPF_MSH: /* ldx 4*([k]&0xf) */
			if (cbpf_load(c, k, 1, &v))
				return cbpf_reject(vm);
			v = (v & 0xf) << 2;
			break;
		case BPF_IMM:
			v = k;
			break;
		case BPF_LEN:
			v = vm->wirelen;
			break;
		case BPF_MEM:
			v = vm->M[k & 15];
			break;
		default:
			return cbpf_reject(vm);
		}
		if (BPF_CLASS(code) == BPF_LD)
			vm->A = v;
		else
			vm->X = v;
		return 0;
	}
	case BPF_ST:
		vm->M[k & 15] = vm->A;
		return 0;
	case BPF_STX:
		vm->M[k & 15] = vm->X;
		return 0;
	case BPF_ALU:
		vm->A = cbpf_alu(BPF_OP(code), vm->A, BPF_SRC(code) == BPF_X ? vm->X : k, &bad);
		return bad ? cbpf_reject(vm) : 0;
	case BPF_JMP: {
		__u32 src = BPF_SRC(code) == BPF_X ? vm->X : k;
		int t;

		switch (BPF_OP(code)) {
		case BPF_JA:
			vm->pc = pc + 1 + k;
			return 0;
		case BPF_JEQ:
			t = vm->A == src;
			break;
		case BPF_JGT:
			t = vm->A > src;
			break;
		case BPF_JGE:
			t = vm->A >= src;
			break;
		case BPF_JSET:
			t = (vm->A & src) != 0;
			break;
		default:
			return cbpf_reject(vm);
		}
		vm->pc = pc + 1 + (t ? jt : jf);
		return 0;
	}
	case BPF_RET:
		vm->ret = BPF_RVAL(code) == BPF_A ? vm->A : k;
		return 1;
	case BPF_MISC:
		if (BPF_MISCOP(code) == BPF_TAX)
			vm->X = vm->A;
		else
			vm->A = vm->X;
		return 0;
	}
	return cbpf_reject(vm);
}

/* Sets the machine's view of `skb` (at_data: skb->data is the network header, as at
 * receive); *base: its byte 0. 0 when the sk_buff is not a packet. */
static __always_inline int cbpf_view(struct cbpf_vm *vm, struct sk_buff *skb, int at_data, const unsigned char **base)
{
	unsigned char *head = skb->head, *data = skb->data, *l3, *b;
	__u16 mac = skb->mac_header, nh = skb->network_header;
	__u16 proto = skb->protocol;
	unsigned char *tail = head + skb->tail;
	__u32 len = skb->len;

	l3 = at_data || nh == 0xffff ? data : head + nh;
	vm->pseudo = 0;
	if (mac != 0xffff && head + mac < l3) {
		b = head + mac;
	} else {
		if (!proto)
			return 0; /* neither a link nor a network header: not a packet */
		b = l3 - 14;
		vm->pseudo = 1;
		__builtin_memset(vm->eth, 0, 12);
		__builtin_memcpy(&vm->eth[12], &proto, 2);
	}
	vm->base = (__u64)b;
	vm->caplen = tail > b ? tail - b : 0;
	vm->wirelen = len + (__u32)(data - b);
	*base = b;
	return 1;
}

/* Runs the expression on `skb`: 1 match, 0 not. The machine keeps its trace of loads. */
static __always_inline int cbpf_run(struct sk_buff *skb, int at_data)
{
	__u32 zero = 0;
	struct cbpf_vm *vm = bpf_map_lookup_elem(&cbpf_scratch, &zero);
	const unsigned char *base;

	if (!vm)
		return 0;
	if (!cbpf_view(vm, skb, at_data, &base)) {
		vm->nloads = CBPF_TRACE + 1; /* nothing to replay */
		return 0;
	}
	vm->nloads = 0;
	vm->A = 0;
	vm->X = 0;
	vm->pc = 0;
	vm->ret = 0;
	struct cbpf_ctx c = {.vm = vm, .base = base};

	bpf_loop(pcap_len, cbpf_step, &c, 0);
	return vm->ret != 0;
}

/* Remembered verdicts: a small per-CPU table of the packets this CPU last received or
 * queued, by the sk_buff's address (slab objects of 256 bytes: the bits above 8 spread
 * them), so a packet's drop or consume on this CPU costs a lookup, even when other packets
 * were sent in between (an ICMP error for it, say). A receive or queue takes the slot,
 * running the expression unless the packet's remembered run replays (pcap_replay: the
 * packet may have changed since, NAT, decapsulation, a TTL, and then it runs).
 * An sk_buff freed where no tracepoint sees it (much of the stack frees so) leaves its
 * verdict behind; a later sk_buff inherits it only with the same address and data buffer,
 * no receive or queue in that slot in between, and its first traced point a drop or consume. */
#define PCAP_MEMO_SLOTS 16
struct pcap_memo {
	__u64 skb;
	__u64 head;
	__u32 match;
	/* the run's view and loads, for pcap_replay */
	__u32 caplen;
	__u32 wirelen;
	__u16 proto;
	__u8 pseudo;
	__u8 pad;
	__u32 nloads;
	struct cbpf_rec trace[CBPF_TRACE];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PCAP_MEMO_SLOTS);
	__type(key, __u32);
	__type(value, struct pcap_memo);
} pcap_memo SEC(".maps");

static __always_inline struct pcap_memo *pcap_memo_slot(struct sk_buff *skb)
{
	__u32 slot = ((__u64)skb >> 8) & (PCAP_MEMO_SLOTS - 1);

	return bpf_map_lookup_elem(&pcap_memo, &slot);
}

/* The verdict remembered for skb (0 / 1), forgotten as it is read; -1 when none. */
static __always_inline int pcap_remembered(struct pcap_memo *m, struct sk_buff *skb, __u64 head)
{
	if (!m || m->skb != (__u64)skb || m->head != head)
		return -1;
	m->skb = 0;
	return m->match;
}

/* Remembers the verdict of the run cbpf_run just made on skb, with its view and loads. */
static __always_inline void pcap_remember(struct pcap_memo *m, struct sk_buff *skb, __u64 head, int match)
{
	__u32 zero = 0;
	struct cbpf_vm *vm = bpf_map_lookup_elem(&cbpf_scratch, &zero);

	if (!m || !vm)
		return;
	m->skb = (__u64)skb;
	m->head = head;
	m->match = match;
	m->caplen = vm->caplen;
	m->wirelen = vm->wirelen;
	m->pseudo = vm->pseudo;
	m->proto = skb->protocol;
	m->nloads = vm->nloads;
	__builtin_memcpy(m->trace, vm->trace, sizeof(m->trace));
}

/* After a replay: the memo is this packet's again (its view and loads are still right). */
static __always_inline void pcap_remember_again(struct pcap_memo *m, struct sk_buff *skb, __u64 head)
{
	if (!m)
		return;
	m->skb = (__u64)skb;
	m->head = head;
}

/* Where a packet enters a device again (a forwarded packet's queue after its receive, a
 * veth peer's receive after the queue), the expression runs once per packet: a cBPF run is
 * a function of the view's length (caplen, wirelen) and of the values its loads read, in
 * order, nothing else (its jumps go forward, its scratch memory starts cleared). So when the
 * view has the same lengths and every load the remembered run made reads the same value
 * now, a new run would take the same path to the same verdict: the verdict is reused, the
 * loads re-read (a few direct loads instead of the interpreter). Any difference (a TTL, an
 * Ethernet address, a NAT rewrite the expression looks at) and the expression runs. */
static __always_inline int pcap_replay(struct pcap_memo *m, struct sk_buff *skb, int at_data)
{
	__u32 zero = 0, n;
	struct cbpf_vm *vm = bpf_map_lookup_elem(&cbpf_scratch, &zero);
	const unsigned char *base;

	if (!m || !vm)
		return -1;
	n = m->nloads;
	if (n > CBPF_TRACE || !cbpf_view(vm, skb, at_data, &base))
		return -1;
	if (vm->caplen != m->caplen || vm->wirelen != m->wirelen || vm->pseudo != m->pseudo ||
	    (vm->pseudo && skb->protocol != m->proto))
		return -1;
	struct cbpf_ctx c = {.vm = vm, .base = base};

	for (__u32 i = 0; i < CBPF_TRACE; i++) {
		__u32 v;

		if (i >= n)
			break;
		if (cbpf_fetch(&c, m->trace[i].off, m->trace[i].size, &v) || v != m->trace[i].val)
			return -1;
	}
	return m->match;
}

#endif
