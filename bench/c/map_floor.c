// C floor for the map benchmark: the same operations as bench/core.bench.mjs, made
// directly through libbpf on a map of the same type and sizes. The batch figures are
// also the floor of the column operations (same syscalls, same bytes); "iterate" is the
// get-next-key + lookup walk that `for (const e of map)` makes.
//
//   map_floor <n>          runs every op once, prints one JSON line
//   map_floor <n> serve    reads op names from stdin, one a line, runs each on its own
//                          map and prints its CPU seconds, one a line: the JS side then
//                          times each op next to its C floor, moments apart
#include <bpf/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);  // CPU time, as the JS side measures
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int fd;
static uint32_t n, total;
static uint32_t* keys;
static uint64_t* vals;
static uint64_t sink;

// One op; returns its CPU seconds, or -1 when it went wrong.
static double run(const char* op) {
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  uint64_t v;
  double t = now();
  if (!strcmp(op, "set")) {
    for (uint32_t i = 0; i < n; i++) bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY);
  } else if (!strcmp(op, "get")) {
    for (uint32_t i = 0; i < n; i++) {
      bpf_map_lookup_elem(fd, &keys[i], &v);
      sink += v;
    }
  } else if (!strcmp(op, "delete")) {
    for (uint32_t i = 0; i < n; i++) bpf_map_delete_elem(fd, &keys[i]);
  } else if (!strcmp(op, "setBatch")) {
    uint32_t cnt = n;
    if (bpf_map_update_batch(fd, keys, vals, &cnt, &opts)) return -1;
  } else if (!strcmp(op, "getBatch")) {
    uint32_t in = 0, out = 0;
    int first = 1;
    total = 0;
    while (total < n) {
      uint32_t c = 4096 < n - total ? 4096 : n - total;
      int r = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys + total, vals + total, &c, &opts);
      total += c;
      if (r) break;
      in = out;
      first = 0;
    }
    if (total != n) return -1;
  } else if (!strcmp(op, "iterate")) {
    uint32_t cur, next, walked = 0;
    for (int more = !bpf_map_get_next_key(fd, NULL, &next); more && walked <= 2 * n;
         more = !bpf_map_get_next_key(fd, &cur, &next)) {
      if (!bpf_map_lookup_elem(fd, &next, &v)) {
        sink += v;
        walked++;
      }
      cur = next;
    }
    if (walked != n) return -1;
  } else if (!strcmp(op, "deleteBatch")) {
    uint32_t cnt = n;
    if (bpf_map_delete_batch(fd, keys, &cnt, &opts)) return -1;
  } else {
    return -1;
  }
  return now() - t;
}

int main(int argc, char** argv) {
  n = argc > 1 ? (uint32_t)atoi(argv[1]) : 100000;
  fd = bpf_map_create(BPF_MAP_TYPE_HASH, "floor", 4, 8, n, NULL);
  if (fd < 0) {
    perror("bpf_map_create");
    return 1;
  }
  keys = malloc(n * 4);
  vals = malloc(n * 8);
  for (uint32_t i = 0; i < n; i++) {
    keys[i] = i;
    vals[i] = (uint64_t)i * 7;
  }
  if (argc > 2 && !strcmp(argv[2], "serve")) {
    char line[64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
      line[strcspn(line, "\n")] = 0;
      double s = run(line);
      if (s < 0) {
        fprintf(stderr, "map_floor: op '%s' failed\n", line);
        return 1;
      }
      printf("%.9f\n", s);
    }
    return (int)(sink & 0);
  }
  static const char* ops[] = {"set", "get", "delete", "setBatch", "getBatch", "iterate", "deleteBatch"};
  double t[7];
  for (int i = 0; i < 7; i++) {
    t[i] = run(ops[i]);
    if (t[i] < 0) {
      fprintf(stderr, "map_floor: op '%s' failed\n", ops[i]);
      return 1;
    }
  }
  printf(
      "{\"n\":%u,\"set\":%.9f,\"get\":%.9f,\"delete\":%.9f,\"setBatch\":%.9f,\"getBatch\":%.9f,"
      "\"iterate\":%.9f,\"deleteBatch\":%.9f,\"sink\":%llu}\n",
      n, t[0], t[1], t[2], t[3], t[4], t[5], t[6], (unsigned long long)(sink & 1));
  return 0;
}
