// SPDX-License-Identifier: MIT
/* The C consumer floor for bench/ringbuf.bench.mjs, and the producer both sides use.
 *
 * produce(): runs the XDP program with BPF_PROG_TEST_RUN in a loop for `seconds`, `chunk`
 * records per call: a program named *loop* (xdp_records_loop) makes them all in one run
 * through bpf_loop() (the count is the packet's first 4 bytes); any other makes one record
 * per run (repeat = chunk). With `rate` > 0 it sleeps between calls to average `rate`
 * records/s.
 *
 * The consumer copies each whole record into a struct and reads every field (the C form
 * of decoding the full struct), with libbpf's ring_buffer.
 *
 *   ringbuf_floor drain <object.bpf.o> <prog> <ring bytes> <count>
 *     loads the object, runs the program <count> times with no consumer (the ring must
 *     hold them), then drains the ring with ring_buffer__consume and times that alone:
 *     the consumer's capacity, whatever the wake-ups. Prints one JSON line.
 *   ringbuf_floor consume <object.bpf.o> <prog> <ring bytes> <seconds> <chunk> [rate]
 *     loads the object, produces on a thread, and consumes on the main thread with
 *     ring_buffer__poll (the program decides the wake-ups). Prints one JSON line.
 *   ringbuf_floor produce <pinned program> <seconds> <chunk> [rate] [loop]
 *     only the producer, on a program pinned by the JS benchmark (which consumes); `loop`
 *     when the pinned program is the bpf_loop() one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#endif
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct rec64 {
  uint64_t seq;
  uint64_t ktime;
  uint32_t len;
  uint32_t ifindex;
  uint8_t fill[40];
};

static atomic_int producer_done;
static uint64_t consumed, checksum, out_of_order, last_seq;
static int prog_fd;
static double seconds, rate;
static unsigned chunk;
static uint64_t runs;
static int loop_prog; /* the program makes `chunk` records per run (bpf_loop) */
static double producer_seconds;

/* Pins the calling thread to the CPU named by environment variable `var` (unset: no pin),
 * so the producer and the consumer each have a CPU of their own
 * (BPFKIT_RB_PRODUCER_CPU, BPFKIT_RB_CONSUMER_CPU). */
static void pin_self(const char* var) {
  const char* v = getenv(var);
  if (!v || !*v) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(atoi(v), &set);
  if (sched_setaffinity(0, sizeof(set), &set))
    fprintf(stderr, "sched_setaffinity(%s=%s): %s\n", var, v, strerror(errno));
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_record(void* ctx, void* data, size_t len) {
  struct rec64 r;

  if (len >= sizeof(r)) {
    memcpy(&r, data, sizeof(r));
    if (consumed && r.seq <= last_seq) out_of_order++;
    last_seq = r.seq;
    checksum += r.len + r.ifindex + (r.ktime & 1) + r.fill[0] + r.fill[sizeof(r.fill) - 1];
  }
  consumed++;
  return 0;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void* produce(void* arg) {
  pin_self("BPFKIT_RB_PRODUCER_CPU");
  unsigned char pkt[64] = {0};
  double start = now(), end = start + seconds;
  uint32_t n = chunk;

  memcpy(pkt, &n, sizeof(n)); /* host order: xdp_records_loop's count */
  while (now() < end) {
    LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = loop_prog ? 1 : chunk);
    if (bpf_prog_test_run_opts(prog_fd, &t)) {
      fprintf(stderr, "test run: %s\n", strerror(errno));
      break;
    }
    runs += chunk;
    if (rate > 0) {
      double ahead = start + runs / rate - now();
      if (ahead > 0) usleep((useconds_t)(ahead * 1e6));
    }
  }
  producer_seconds = now() - start;
  atomic_store(&producer_done, 1);
  return NULL;
}

static uint64_t sum_percpu_u64(int fd) {
  int n = libbpf_num_possible_cpus();
  uint64_t *v = calloc(n, sizeof(*v)), s = 0;
  uint32_t k = 0;

  if (v && bpf_map_lookup_elem(fd, &k, v) == 0)
    for (int i = 0; i < n; i++) s += v[i];
  free(v);
  return s;
}

static int produce_only(const char* pin) {
  prog_fd = bpf_obj_get(pin);
  if (prog_fd < 0) {
    fprintf(stderr, "open %s: %s\n", pin, strerror(errno));
    return 1;
  }
  double t0 = now();
  produce(NULL);
  printf("{\"produced\":%llu,\"seconds\":%.6f}\n", (unsigned long long)runs, now() - t0);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 5 && !strcmp(argv[1], "produce")) {
    seconds = atof(argv[3]);
    chunk = strtoul(argv[4], NULL, 0);
    rate = argc > 5 ? atof(argv[5]) : 0;
    loop_prog = argc > 6 && !strcmp(argv[6], "loop");
    return produce_only(argv[2]);
  }
  int drain = argc >= 6 && !strcmp(argv[1], "drain");
  if (!drain && (argc < 7 || strcmp(argv[1], "consume"))) {
    fprintf(stderr,
            "usage: %s consume <object> <prog> <ring bytes> <seconds> <chunk> [rate]\n"
            "       %s drain <object> <prog> <ring bytes> <count>\n"
            "       %s produce <pinned program> <seconds> <chunk> [rate] [loop]\n",
            argv[0], argv[0], argv[0]);
    return 2;
  }
  argv++;
  rate = !drain && argc > 7 ? atof(argv[6]) : 0;
  struct bpf_object* obj = bpf_object__open_file(argv[1], NULL);
  if (!obj) {
    fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  struct bpf_map* events = bpf_object__find_map_by_name(obj, "events");
  if (!events || bpf_map__set_max_entries(events, strtoul(argv[3], NULL, 0))) {
    fprintf(stderr, "map events: %s\n", strerror(errno));
    return 1;
  }
  if (bpf_object__load(obj)) {
    fprintf(stderr, "load: %s\n", strerror(errno));
    return 1;
  }
  struct bpf_program* prog = bpf_object__find_program_by_name(obj, argv[2]);
  struct bpf_map* lost = bpf_object__find_map_by_name(obj, "events_lost");
  if (!prog || !lost) {
    fprintf(stderr, "program %s or map events_lost missing\n", argv[2]);
    return 1;
  }
  prog_fd = bpf_program__fd(prog);
  loop_prog = strstr(argv[2], "loop") != NULL;
  struct ring_buffer* rb = ring_buffer__new(bpf_map__fd(events), on_record, NULL, NULL);
  if (!rb) {
    fprintf(stderr, "ring_buffer__new: %s\n", strerror(errno));
    return 1;
  }
  if (drain) {
    /* fill with no consumer, then time the drain alone */
    uint64_t count = strtoull(argv[4], NULL, 0);
    unsigned char pkt[64] = {0};
    while (runs < count) {
      unsigned n = count - runs < 100000 ? count - runs : 100000;
      LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = n);
      if (bpf_prog_test_run_opts(prog_fd, &t)) {
        fprintf(stderr, "test run: %s\n", strerror(errno));
        return 1;
      }
      runs += n;
    }
    double c0 = cpu_now(), w0 = now();
    while (ring_buffer__consume(rb) > 0)
      ;
    double cpu = cpu_now() - c0, wall = now() - w0;
    uint64_t lost_n = sum_percpu_u64(bpf_map__fd(lost));
    printf(
        "{\"produced\":%llu,\"consumed\":%llu,\"lost\":%llu,\"cpuSeconds\":%.6f,\"seconds\":%.6f,"
        "\"outOfOrder\":%llu,\"checksum\":%llu}\n",
        (unsigned long long)runs, (unsigned long long)consumed, (unsigned long long)lost_n, cpu, wall,
        (unsigned long long)out_of_order, (unsigned long long)checksum);
    ring_buffer__free(rb);
    bpf_object__close(obj);
    return 0;
  }
  seconds = atof(argv[4]);
  chunk = strtoul(argv[5], NULL, 0);
  pthread_t th;
  pin_self("BPFKIT_RB_CONSUMER_CPU");
  double t0 = now();
  pthread_create(&th, NULL, produce, NULL);
  while (!atomic_load(&producer_done)) {
    int n = ring_buffer__poll(rb, 100);
    if (n < 0 && n != -EINTR) {
      fprintf(stderr, "ring_buffer__poll: %s\n", strerror(-n));
      break;
    }
  }
  pthread_join(th, NULL);
  while (ring_buffer__consume(rb) > 0)
    ;
  double elapsed = now() - t0;
  uint64_t lost_n = sum_percpu_u64(bpf_map__fd(lost));
  printf(
      "{\"produced\":%llu,\"consumed\":%llu,\"lost\":%llu,\"seconds\":%.6f,\"producerSeconds\":%.6f,"
      "\"outOfOrder\":%llu,\"checksum\":%llu}\n",
      (unsigned long long)runs, (unsigned long long)consumed, (unsigned long long)lost_n, elapsed, producer_seconds,
      (unsigned long long)out_of_order, (unsigned long long)checksum);
  ring_buffer__free(rb);
  bpf_object__close(obj);
  return 0;
}
