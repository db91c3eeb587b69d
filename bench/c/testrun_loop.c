// BPF_PROG_TEST_RUN driver for the decap benchmark: runs a program (by id) on one frame
// `calls` times, each call with `repeat` repetitions, from a tight C loop (no JS between
// calls), and prints the kernel-measured ns per repetition (mean, median and 10th
// percentile over the calls) and the last return value, as JSON.
// usage: testrun_loop <prog id> <frame hex> <calls> <repeat>
#include <bpf/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: testrun_loop <prog id> <frame hex> <calls> <repeat>\n");
    return 2;
  }
  int fd = bpf_prog_get_fd_by_id(atoi(argv[1]));
  if (fd < 0) {
    perror("bpf_prog_get_fd_by_id");
    return 1;
  }
  size_t n = strlen(argv[2]) / 2;
  uint8_t *in = malloc(n), *out = malloc(n + 512);
  for (size_t i = 0; i < n; i++) sscanf(argv[2] + 2 * i, "%2hhx", &in[i]);
  int calls = atoi(argv[3]);
  uint32_t repeat = (uint32_t)strtoul(argv[4], NULL, 10);
  uint32_t* d = malloc(sizeof(uint32_t) * calls);
  double sum = 0;
  uint32_t retval = 0;
  for (int i = 0; i < calls; i++) {
    LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = in, .data_size_in = n, .data_out = out, .data_size_out = n + 512,
                .repeat = repeat);
    if (bpf_prog_test_run_opts(fd, &t)) {
      perror("bpf_prog_test_run");
      return 1;
    }
    d[i] = t.duration;
    sum += t.duration;
    retval = t.retval;
  }
  qsort(d, calls, sizeof(uint32_t), cmp);
  printf("{\"meanNs\":%.2f,\"medianNs\":%u,\"p10Ns\":%u,\"retval\":%u}\n", sum / calls, d[calls / 2], d[calls / 10],
         retval);
  return 0;
}
