// UDP sink for the decap benchmark: binds addr:port, reads datagrams with recvmmsg as
// fast as they come, and on SIGTERM/SIGINT prints the number received and exits.
// Prints "READY" once bound. usage: udp_drain <addr> <port>
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM 2048

static volatile sig_atomic_t stop;
static void on_signal(int s) {
  (void)s;
  stop = 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: udp_drain <addr> <port>\n");
    return 2;
  }
  int v6 = strchr(argv[1], ':') != NULL;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  int rcvbuf = 32 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  struct sockaddr_storage ss = {0};
  socklen_t sl;
  if (v6) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET6, argv[1], &a->sin6_addr) != 1) {
      fprintf(stderr, "bad address\n");
      return 2;
    }
    sl = sizeof(*a);
  } else {
    struct sockaddr_in* a = (struct sockaddr_in*)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &a->sin_addr) != 1) {
      fprintf(stderr, "bad address\n");
      return 2;
    }
    sl = sizeof(*a);
  }
  if (bind(fd, (struct sockaddr*)&ss, sl) < 0) {
    perror("bind");
    return 1;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;  // no SA_RESTART: recvmmsg returns EINTR
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  static char bufs[BATCH][DGRAM];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = DGRAM;
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  printf("READY\n");
  fflush(stdout);
  unsigned long long total = 0;
  while (!stop) {
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("recvmmsg");
      return 1;
    }
    total += (unsigned)n;
  }
  printf("%llu\n", total);
  return 0;
}
