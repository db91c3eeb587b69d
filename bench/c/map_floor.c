// C floor for the map benchmark: the same operations as bench/core.bench.mjs, made
// directly through libbpf on a map of the same type and sizes. Prints JSON. The batch
// figures are also the floor of the column operations (same syscalls, same bytes);
// "iterate" is the get-next-key + lookup walk that `for (const e of map)` makes.
#include <bpf/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);  // CPU time, as the JS side measures
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  uint32_t n = argc > 1 ? (uint32_t)atoi(argv[1]) : 100000;
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "floor", 4, 8, n, NULL);
  if (fd < 0) { perror("bpf_map_create"); return 1; }
  uint32_t *keys = malloc(n * 4);
  uint64_t *vals = malloc(n * 8);
  for (uint32_t i = 0; i < n; i++) { keys[i] = i; vals[i] = (uint64_t)i * 7; }
  double t, set, get, del, bset, bget, bdel, iter;
  uint64_t v, sink = 0;

  t = now();
  for (uint32_t i = 0; i < n; i++) bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY);
  set = now() - t;
  t = now();
  for (uint32_t i = 0; i < n; i++) { bpf_map_lookup_elem(fd, &keys[i], &v); sink += v; }
  get = now() - t;
  t = now();
  for (uint32_t i = 0; i < n; i++) bpf_map_delete_elem(fd, &keys[i]);
  del = now() - t;

  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  uint32_t cnt = n;
  t = now();
  if (bpf_map_update_batch(fd, keys, vals, &cnt, &opts)) { perror("update_batch"); return 1; }
  bset = now() - t;
  t = now();
  uint32_t total = 0, in = 0, out = 0;
  int first = 1;
  while (total < n) {
    uint32_t c = 4096 < n - total ? 4096 : n - total;
    int r = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys + total, vals + total, &c, &opts);
    total += c;
    if (r) break;
    in = out;
    first = 0;
  }
  bget = now() - t;
  t = now();
  uint32_t cur, next, walked = 0;
  for (int more = !bpf_map_get_next_key(fd, NULL, &next); more && walked <= 2 * n;
       more = !bpf_map_get_next_key(fd, &cur, &next)) {
    if (!bpf_map_lookup_elem(fd, &next, &v)) { sink += v; walked++; }
    cur = next;
  }
  iter = now() - t;
  if (walked != total) { fprintf(stderr, "walked %u of %u entries\n", walked, total); return 1; }
  cnt = total;
  t = now();
  bpf_map_delete_batch(fd, keys, &cnt, &opts);
  bdel = now() - t;
  printf("{\"n\":%u,\"set\":%.9f,\"get\":%.9f,\"delete\":%.9f,\"setBatch\":%.9f,\"getBatch\":%.9f,"
         "\"deleteBatch\":%.9f,\"iterate\":%.9f,\"sink\":%llu}\n",
         n, set, get, del, bset, bget, bdel, iter, (unsigned long long)(sink & 1));
  return 0;
}
