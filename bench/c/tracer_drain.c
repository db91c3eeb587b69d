// SPDX-License-Identifier: MIT
/* The C consumer of PacketTracer's ring for bench/tracer.bench.mjs: the floor the Node
 * side's event delivery is compared with.
 *
 *   tracer_drain <pinned ringbuf map> <seconds>
 *     consumes with libbpf's ring_buffer (epoll + ring_buffer__poll, default wake-ups) for
 *     `seconds`, then drains what is left. Each record's handler reads every field a
 *     TraceEvent holds as a number (struct tracer_event, bpf/tracer/event.h: time, skb,
 *     namespace, interface index and name, mark, length, point, family, protocol, ports,
 *     addresses, reason, result, aux, gateway, cpu) into a checksum, as PacketTracer's
 *     events read their record's words; neither formats strings. Prints one JSON line:
 *     {"consumed":N,"firstAt":F,"lastAt":L,"cpuSeconds":C,"checksum":X}: F and L are
 *     CLOCK_MONOTONIC seconds (Node's process.hrtime clock) when the poll that returned
 *     the first and the last records returned; C is this process's CPU time.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../../bpf/tracer/event.h"

static uint64_t consumed, checksum;

static int on_record(void* ctx, void* data, size_t size) {
  const struct tracer_event* e = data;
  uint64_t x = 0;

  (void)ctx;
  if (size < sizeof(*e)) return 0;
  x ^= e->ts ^ e->skb;
  x ^= (uint64_t)e->netns << 32 | e->ifindex;
  x ^= (uint64_t)e->mark << 32 | e->len;
  x ^= (uint64_t)e->reason << 32 | (uint32_t)e->result;
  x ^= (uint64_t)e->aux << 32 | e->cpu;
  x ^= (uint64_t)e->point << 48 | (uint64_t)e->family << 40 | (uint64_t)e->proto << 32 | (uint32_t)e->sport << 16 |
       e->dport;
  for (int i = 0; i < 16; i += 8) {
    uint64_t s, d, g, n;

    memcpy(&s, e->saddr + i, 8);
    memcpy(&d, e->daddr + i, 8);
    memcpy(&g, e->gw + i, 8);
    memcpy(&n, e->ifname + i, 8);
    x ^= s ^ d ^ g ^ n;
  }
  checksum += x;
  consumed++;
  return 0;
}

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <pinned ringbuf map> <seconds>\n", argv[0]);
    return 2;
  }
  int fd = bpf_obj_get(argv[1]);
  if (fd < 0) {
    fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  struct ring_buffer* rb = ring_buffer__new(fd, on_record, NULL, NULL);
  if (!rb) {
    fprintf(stderr, "ring_buffer__new: %s\n", strerror(errno));
    return 1;
  }
  double secs = atof(argv[2]), t0 = now(), t, first_at = 0, last_at = 0;
  /* bounded: one poll per 100 ms at most, until the time is up; the time of every poll
   * that returned records (the same granularity as the Node side's batches) */
  for (long i = 0; i < 1000000 && (t = now()) - t0 < secs; i++) {
    if (ring_buffer__poll(rb, 100) > 0) {
      last_at = now();
      if (first_at == 0) first_at = last_at;
    }
  }
  if (ring_buffer__consume(rb) > 0) last_at = now();
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  printf("{\"consumed\":%llu,\"firstAt\":%.6f,\"lastAt\":%.6f,\"cpuSeconds\":%.6f,\"checksum\":%llu}\n",
         (unsigned long long)consumed, first_at, last_at, cpu, (unsigned long long)checksum);
  ring_buffer__free(rb);
  return 0;
}
