// rtnetlink socket for the rule/route bindings (see netlink.h): open in a namespace,
// send packed batches, read replies and dumps, interface names and indexes.
#if defined(BPFKIT_HAVE_LIBNL)
#include "netlink.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/route/link.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "registry.h"
#include "util.h"

namespace bpfkit {
namespace nl {

namespace {

constexpr size_t kDatagramBytes = 32 * 1024;  // requests packed per sendmsg
constexpr size_t kDatagramMessages = 256;     // and at most this many of them
constexpr size_t kRecvBytes = 64 * 1024;      // > the kernel's 32 KiB dump skb cap
constexpr int kRecvTimeoutMs = 15000;         // one reply never takes this long
constexpr int kSndBuf = 1 << 20;
constexpr int kRcvBuf = 4 << 20;

std::string Where(const std::string& netns) { return netns.empty() ? "" : " in network namespace " + netns; }

void SetOpt(int fd, int level, int opt, int val) { (void)setsockopt(fd, level, opt, &val, sizeof val); }

}  // namespace

Socket::~Socket() {
  if (fd_ >= 0) close(fd_);
}

bool Socket::Open(const std::string& netns, Failure* f) {
  netns_ = netns;
  {
    NetnsGuard guard;
    if (!guard.Enter(netns, f)) return false;
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd_ < 0) {
      int e = errno;
      f->Set(e, "socket(AF_NETLINK)", "cannot open a routing netlink socket" + Where(netns));
      return false;
    }
  }  // back in the caller's namespace; the socket stays in the target one
  // Acks carry only the header of the failed request, plus the kernel's text.
  SetOpt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, 1);
  SetOpt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, 1);
  // Lets the kernel filter route dumps by table (and reject malformed dump requests).
  SetOpt(fd_, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
  SetOpt(fd_, SOL_SOCKET, SO_SNDBUF, kSndBuf);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &kRcvBuf, sizeof kRcvBuf) < 0)
    SetOpt(fd_, SOL_SOCKET, SO_RCVBUF, kRcvBuf);
  sockaddr_nl local;
  memset(&local, 0, sizeof local);
  local.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) {
    int e = errno;
    f->Set(e, "bind(AF_NETLINK)", "cannot bind the routing netlink socket" + Where(netns));
    return false;
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  seq_ = static_cast<uint32_t>(ts.tv_nsec ^ ts.tv_sec);
  buf_.resize(kRecvBytes);
  return true;
}

bool Socket::SendRaw(const void* buf, size_t len, const char* what, Failure* f) {
  sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  for (int tries = 0; tries < 100; tries++) {
    ssize_t n = sendto(fd_, buf, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    if (n >= 0) return true;
    if (errno == EINTR) continue;
    int e = errno;
    f->Set(e, std::string("sendto(") + what + ")", std::string("cannot send ") + what + " request" + Where(netns_));
    return false;
  }
  f->Set(EINTR, std::string("sendto(") + what + ")", "interrupted too often");
  return false;
}

bool Socket::RecvOnce(const char* what, const std::function<bool(nlmsghdr*)>& on, Failure* f) {
  for (int tries = 0; tries < 100; tries++) {
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, kRecvTimeoutMs);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      f->Set(e, "poll", std::string("waiting for the answer to ") + what);
      return false;
    }
    if (r == 0) {
      f->Set(ETIMEDOUT, std::string("recvmsg(") + what + ")",
             std::string("no answer from the kernel to ") + what + " within " + std::to_string(kRecvTimeoutMs) + " ms");
      return false;
    }
    sockaddr_nl from;
    iovec iov{buf_.data(), buf_.size()};
    msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd_, &mh, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      int e = errno;
      // ENOBUFS: the receive queue overflowed and answers were lost.
      f->Set(e, std::string("recvmsg(") + what + ")",
             e == ENOBUFS ? std::string("kernel answers to ") + what + " were lost (receive buffer overflow)"
                          : std::string("cannot read the answer to ") + what);
      return false;
    }
    if (mh.msg_flags & MSG_TRUNC) {
      f->Set(EMSGSIZE, std::string("recvmsg(") + what + ")", "netlink answer larger than the receive buffer");
      return false;
    }
    if (from.nl_pid != 0) return true;  // not from the kernel: ignore
    int len = static_cast<int>(n);
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (!on(h)) break;
    }
    return true;
  }
  f->Set(EINTR, std::string("recvmsg(") + what + ")", "interrupted too often");
  return false;
}

std::string ExtAckMessage(const nlmsghdr* nlh) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
  size_t off = sizeof(nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
  size_t total = nlh->nlmsg_len - NLMSG_HDRLEN;
  if (off >= total) return "";
  const auto* head = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(e) + off);
  nlattr* a = nla_find(head, static_cast<int>(total - off), NLMSGERR_ATTR_MSG);
  if (!a || nla_len(a) <= 0) return "";
  const char* s = static_cast<const char*>(nla_data(a));
  return std::string(s, strnlen(s, static_cast<size_t>(nla_len(a))));
}

void Wire::Append(nl_msg* m) {
  const nlmsghdr* h = nlmsg_hdr(m);
  offsets.push_back(bytes.size());
  bytes.insert(bytes.end(), reinterpret_cast<const char*>(h), reinterpret_cast<const char*>(h) + h->nlmsg_len);
  bytes.resize(offsets.back() + NLMSG_ALIGN(h->nlmsg_len), 0);
}

bool Socket::Batch(Wire& wire, std::vector<OpResult>* results, Failure* f) {
  const size_t n = wire.offsets.size();
  results->assign(n, OpResult{});
  auto hdr = [&](size_t k) { return reinterpret_cast<nlmsghdr*>(wire.bytes.data() + wire.offsets[k]); };
  auto end = [&](size_t k) { return k + 1 < n ? wire.offsets[k + 1] : wire.bytes.size(); };
  size_t i = 0;
  while (i < n) {
    // The requests are contiguous in `wire`: a datagram is a slice of it.
    const size_t start = i;
    const uint32_t first = seq_ + 1;
    while (i < n && i - start < kDatagramMessages) {
      if (i > start && end(i) - wire.offsets[start] > kDatagramBytes) break;
      nlmsghdr* h = hdr(i);
      h->nlmsg_seq = ++seq_;
      h->nlmsg_pid = 0;
      h->nlmsg_flags = static_cast<uint16_t>((h->nlmsg_flags | NLM_F_REQUEST) & ~NLM_F_ACK);
      i++;
    }
    // Only the last request of the datagram asks for an ack: when it arrives, every
    // earlier request was processed (in order), and failures were reported on the way.
    hdr(i - 1)->nlmsg_flags |= NLM_F_ACK;
    const size_t count = i - start;
    const uint32_t last = seq_;
    auto failRest = [&](size_t from, bool uncertain) {
      for (size_t k = from; k < n; k++) {
        (*results)[k].err = f->err ? f->err : EIO;
        (*results)[k].uncertain = uncertain && k < i;
        (*results)[k].message = ((*results)[k].uncertain ? "outcome unknown: " : "not sent: ") + f->message;
      }
    };
    if (!SendRaw(wire.bytes.data() + wire.offsets[start], end(i - 1) - wire.offsets[start], "batch", f)) {
      failRest(start, false);
      return false;
    }
    bool gotLast = false;
    while (!gotLast) {
      bool ok = RecvOnce(
          "batch",
          [&](nlmsghdr* h) {
            if (h->nlmsg_type != NLMSG_ERROR) return true;
            uint32_t idx = h->nlmsg_seq - first;  // modular: seq may wrap
            if (idx >= count) return true;
            const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
            if (e->error != 0) {
              (*results)[start + idx].err = -e->error;
              (*results)[start + idx].message = ExtAckMessage(h);
            }
            if (h->nlmsg_seq == last) gotLast = true;
            return true;
          },
          f);
      if (!ok) {
        failRest(start, true);
        return false;
      }
    }
  }
  return true;
}

bool Socket::Dump(nl_msg* req, const char* what, const std::function<bool(nlmsghdr*, Failure*)>& each,
                  const std::function<void()>& reset, Failure* f) {
  nlmsghdr* h = nlmsg_hdr(req);
  h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_DUMP;
  h->nlmsg_pid = 0;
  for (int attempt = 0; attempt < kDumpAttempts; attempt++) {
    reset();
    h->nlmsg_seq = ++seq_;
    if (!SendRaw(h, h->nlmsg_len, what, f)) return false;
    bool done = false, intr = false, failed = false;
    while (!done) {
      bool ok = RecvOnce(
          what,
          [&](nlmsghdr* m) {
            if (m->nlmsg_seq != h->nlmsg_seq) return true;  // a late answer to something else
            if (m->nlmsg_flags & NLM_F_DUMP_INTR) intr = true;
            if (m->nlmsg_type == NLMSG_DONE) {
              done = true;
              if (m->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
                int err = *static_cast<int*>(NLMSG_DATA(m));
                if (err < 0 && !failed) {
                  failed = true;
                  f->Set(-err, std::string("netlink(") + what + ")",
                         std::string(what) + " dump failed" + Where(netns_));
                }
              }
              return false;
            }
            if (m->nlmsg_type == NLMSG_ERROR) {
              done = true;
              const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(m));
              if (e->error != 0 && !failed) {
                failed = true;
                std::string ext = ExtAckMessage(m);
                f->Set(-e->error, std::string("netlink(") + what + ")",
                       std::string(what) + " dump failed" + Where(netns_) + (ext.empty() ? "" : ": " + ext));
              }
              return false;
            }
            if (!failed && !each(m, f)) failed = true;
            return true;
          },
          f);
      if (!ok) return false;
    }
    if (failed) return false;
    if (!intr) return true;
  }
  f->Set(EAGAIN, std::string("netlink(") + what + ")",
         std::string(what) + " dump was interrupted by concurrent changes " + std::to_string(kDumpAttempts) +
             " times in a row",
         "ERR_BUSY");
  return false;
}

bool Socket::Request(nl_msg* req, const char* what, const std::function<void(nlmsghdr*)>& each, Failure* f) {
  nlmsghdr* h = nlmsg_hdr(req);
  h->nlmsg_flags |= NLM_F_REQUEST;
  h->nlmsg_pid = 0;
  h->nlmsg_seq = ++seq_;
  if (!SendRaw(h, h->nlmsg_len, what, f)) return false;
  bool done = false, failed = false;
  while (!done) {
    bool ok = RecvOnce(
        what,
        [&](nlmsghdr* m) {
          if (m->nlmsg_seq != h->nlmsg_seq) return true;
          done = true;
          if (m->nlmsg_type == NLMSG_ERROR) {
            const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(m));
            if (e->error != 0) {
              failed = true;
              f->Set(-e->error, std::string("netlink(") + what + ")", ExtAckMessage(m));
            }
            return false;
          }
          each(m);
          return false;
        },
        f);
    if (!ok) return false;
  }
  return !failed;
}

int Socket::IfIndex(const std::string& name, Failure* f) {
  auto it = ifindex_cache_.find(name);
  if (it != ifindex_cache_.end()) return it->second;
  nl_msg* msg = nullptr;
  int r = rtnl_link_build_get_request(0, name.c_str(), &msg);
  if (r < 0) {
    SetNlError(f, r, "cannot build a link request for '" + name + "'");
    return 0;
  }
  int idx = 0;
  bool ok = Request(
      msg, "RTM_GETLINK",
      [&](nlmsghdr* m) {
        if (m->nlmsg_type == RTM_NEWLINK && m->nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg)))
          idx = static_cast<ifinfomsg*>(NLMSG_DATA(m))->ifi_index;
      },
      f);
  nlmsg_free(msg);
  if (!ok || idx <= 0) {
    int e = ok ? ENODEV : f->err;
    f->Set(e, "netlink(RTM_GETLINK)", "no such interface '" + name + "'" + Where(netns_),
           e == ENODEV ? "ERR_NO_SUCH_INTERFACE" : "");
    return 0;
  }
  ifindex_cache_[name] = idx;
  return idx;
}

bool Socket::LinkNames(std::unordered_map<int, std::string>* out, Failure* f) {
  nl_msg* msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_DUMP);
  if (!msg) {
    f->Set(ENOMEM, "nlmsg_alloc", "out of memory");
    return false;
  }
  ifinfomsg ifi;
  memset(&ifi, 0, sizeof ifi);
  ifi.ifi_family = AF_UNSPEC;
  nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO);
  bool ok = Dump(
      msg, "RTM_GETLINK",
      [&](nlmsghdr* m, Failure*) {
        if (m->nlmsg_type != RTM_NEWLINK || m->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return true;
        int idx = static_cast<ifinfomsg*>(NLMSG_DATA(m))->ifi_index;
        nlattr* a = nlmsg_find_attr(m, sizeof(ifinfomsg), IFLA_IFNAME);
        if (a)
          (*out)[idx] = std::string(static_cast<const char*>(nla_data(a)),
                                    strnlen(static_cast<const char*>(nla_data(a)), nla_len(a)));
        return true;
      },
      [&] { out->clear(); }, f);
  nlmsg_free(msg);
  return ok;
}

}  // namespace nl
}  // namespace bpfkit

#endif  // BPFKIT_HAVE_LIBNL
