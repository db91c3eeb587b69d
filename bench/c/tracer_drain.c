// SPDX-License-Identifier: MIT
/* The C consumer of PacketTracer's ring for bench/tracer.bench.mjs: the floor the Node
 * side's event delivery is compared with.
 *
 *   tracer_drain <pinned ringbuf map> <seconds>
 *     consumes with libbpf's ring_buffer (epoll + ring_buffer__poll, default wake-ups) for
 *     `seconds`, then drains what is left, reading the point and skb of each record (struct
 *     tracer_event, bpf/tracer/event.h) like a minimal handler. Prints one JSON line:
 *     {"consumed":N,"seconds":S,"lastAt":T}, T: seconds from its start to (about, within
 *     1,024 records) its last record.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t consumed, checksum;
static double last_at;
static double now(void);

static int on_record(void* ctx, void* data, size_t size) {
  const uint8_t* r = data;
  uint64_t skb;
  uint16_t point;

  if (size < 56) return 0;
  memcpy(&skb, r + 8, 8);
  memcpy(&point, r + 48, 2);
  checksum += skb ^ point;
  if ((++consumed & 1023) == 0) last_at = now();
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
  double secs = atof(argv[2]), t0 = now(), t;
  /* bounded: one poll per 100 ms at most, until the time is up */
  for (long i = 0; i < 1000000 && (t = now()) - t0 < secs; i++) ring_buffer__poll(rb, 100);
  uint64_t before = consumed;

  ring_buffer__consume(rb);
  if (consumed != before) last_at = now();
  printf("{\"consumed\":%llu,\"seconds\":%.6f,\"lastAt\":%.6f,\"checksum\":%llu}\n", (unsigned long long)consumed,
         now() - t0, last_at ? last_at - t0 : 0, (unsigned long long)checksum);
  ring_buffer__free(rb);
  return 0;
}
