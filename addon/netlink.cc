// rtnetlink transport for the rule/route bindings (see netlink.h) and the batch entry
// point nlBatch(ops, netns) -> Promise<failures>.
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
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &kRcvBuf, sizeof kRcvBuf) < 0) SetOpt(fd_, SOL_SOCKET, SO_RCVBUF, kRcvBuf);
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
      bool ok = RecvOnce("batch", [&](nlmsghdr* h) {
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
      }, f);
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
      bool ok = RecvOnce(what, [&](nlmsghdr* m) {
        if (m->nlmsg_seq != h->nlmsg_seq) return true;  // a late answer to something else
        if (m->nlmsg_flags & NLM_F_DUMP_INTR) intr = true;
        if (m->nlmsg_type == NLMSG_DONE) {
          done = true;
          if (m->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
            int err = *static_cast<int*>(NLMSG_DATA(m));
            if (err < 0 && !failed) {
              failed = true;
              f->Set(-err, std::string("netlink(") + what + ")", std::string(what) + " dump failed" + Where(netns_));
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
      }, f);
      if (!ok) return false;
    }
    if (failed) return false;
    if (!intr) return true;
  }
  f->Set(EAGAIN, std::string("netlink(") + what + ")",
         std::string(what) + " dump was interrupted by concurrent changes " + std::to_string(kDumpAttempts) + " times in a row",
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
    bool ok = RecvOnce(what, [&](nlmsghdr* m) {
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
    }, f);
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
  bool ok = Request(msg, "RTM_GETLINK", [&](nlmsghdr* m) {
    if (m->nlmsg_type == RTM_NEWLINK && m->nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg)))
      idx = static_cast<ifinfomsg*>(NLMSG_DATA(m))->ifi_index;
  }, f);
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
        if (a) (*out)[idx] = std::string(static_cast<const char*>(nla_data(a)), strnlen(static_cast<const char*>(nla_data(a)), nla_len(a)));
        return true;
      },
      [&] { out->clear(); }, f);
  nlmsg_free(msg);
  return ok;
}

Json& Json::Key(const char* k) {
  Sep();
  out_ += '"';
  out_ += k;
  out_ += "\":";
  afterKey_ = true;
  first_ = false;
  return *this;
}

Json& Json::Str(const std::string& s) {
  Sep();
  out_ += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += static_cast<char>(c);
    } else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      out_ += esc;
    } else {
      out_ += static_cast<char>(c);
    }
  }
  out_ += '"';
  first_ = false;
  return *this;
}

Json& Json::Num(double v) {
  Sep();
  char buf[32];
  if (v == static_cast<double>(static_cast<int64_t>(v))) {
    // every number in a dump is an integer: skip printf's floating-point path
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    out_.append(buf, r.ptr);
  } else {
    snprintf(buf, sizeof buf, "%.17g", v);
    out_ += buf;
  }
  first_ = false;
  return *this;
}

void SetNlError(Failure* f, int nlerr, const std::string& what) {
  int e = nlerr < 0 ? -nlerr : nlerr;
  f->Set(e == NLE_NOMEM ? ENOMEM : EINVAL, "", what + ": " + nl_geterror(e), e == NLE_NOMEM ? "" : "ERR_INVALID_ARGUMENT");
}

std::string AddrText(int family, const void* bin) {
  char s[INET6_ADDRSTRLEN];
  if (!inet_ntop(family, bin, s, sizeof s)) return "";
  return s;
}

nl_addr* AddrFromText(int family, const std::string& text, int prefixLen) {
  unsigned char bin[16];
  if (inet_pton(family, text.c_str(), bin) != 1) return nullptr;
  nl_addr* a = nl_addr_build(family, bin, family == AF_INET ? 4 : 16);
  if (a) nl_addr_set_prefixlen(a, prefixLen);
  return a;
}

Keys::Keys(Napi::Env env)
    : kind(Napi::String::New(env, "kind")), cmd(Napi::String::New(env, "cmd")), spec(Napi::String::New(env, "spec")),
      family(Napi::String::New(env, "family")), priority(Napi::String::New(env, "priority")),
      table(Napi::String::New(env, "table")), action(Napi::String::New(env, "action")),
      fwmark(Napi::String::New(env, "fwmark")), fwmask(Napi::String::New(env, "fwmask")), iif(Napi::String::New(env, "iif")),
      oif(Napi::String::New(env, "oif")), src(Napi::String::New(env, "src")), srcLen(Napi::String::New(env, "srcLen")),
      dst(Napi::String::New(env, "dst")), dstLen(Napi::String::New(env, "dstLen")), tos(Napi::String::New(env, "tos")),
      ipProto(Napi::String::New(env, "ipProto")), protocol(Napi::String::New(env, "protocol")),
      sport(Napi::String::New(env, "sport")), dport(Napi::String::New(env, "dport")), flags(Napi::String::New(env, "flags")),
      metric(Napi::String::New(env, "metric")), type(Napi::String::New(env, "type")), scope(Napi::String::New(env, "scope")),
      prefsrc(Napi::String::New(env, "prefsrc")), nexthops(Napi::String::New(env, "nexthops")), via(Napi::String::New(env, "via")),
      dev(Napi::String::New(env, "dev")), weight(Napi::String::New(env, "weight")) {}

void Reader::Bad(const Napi::String& k, const char* what) const {
  ThrowInvalid(env_, field_ + (field_.empty() ? "" : ".") + k.Utf8Value(), what);
}

bool Reader::U32(const Napi::String& k, uint32_t* out) const {
  Napi::Value v = o_.Get(k);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsNumber()) Bad(k, "expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d)))
    Bad(k, "expected an integer from 0 to 2^32-1");
  *out = static_cast<uint32_t>(d);
  return true;
}

uint32_t Reader::NeedU32(const Napi::String& k) const {
  uint32_t v = 0;
  if (!U32(k, &v)) Bad(k, "is required");
  return v;
}

bool Reader::Str(const Napi::String& k, std::string* out) const {
  Napi::Value v = o_.Get(k);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsString()) Bad(k, "expected a string");
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

std::string Reader::NeedStr(const Napi::String& k) const {
  std::string s;
  if (!Str(k, &s)) Bad(k, "is required");
  return s;
}

namespace {

// nlBatch(ops: {kind: 'rule'|'route', cmd: 'add'|'replace'|'delete', spec}[], netns)
//   -> Promise<{ index, errno, message }[]>  (failed requests only; [] when all applied)
// Rejects without sending anything when the namespace, the socket, an interface name
// or a message cannot be set up.
Napi::Value NlBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowInvalid(env, "ops", "expected an array");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::string netns = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  struct Baton {
    std::vector<std::unique_ptr<Op>> ops;
    std::vector<OpResult> results;
  };
  auto b = std::make_shared<Baton>();
  b->ops.reserve(arr.Length());
  const Keys keys(env);
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string field = "ops[" + std::to_string(i) + "]";
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) ThrowInvalid(env, field, "expected an object");
    Reader o(env, v.As<Napi::Object>(), field);
    std::string kind = o.NeedStr(keys.kind);
    std::string cmd = o.NeedStr(keys.cmd);
    if (cmd != "add" && cmd != "replace" && cmd != "delete") o.Bad(keys.cmd, "expected add, replace or delete");
    Napi::Value spec = o.Get(keys.spec);
    if (!spec.IsObject()) o.Bad(keys.spec, "expected an object");
    if (kind == "rule") {
      if (cmd == "replace") o.Bad(keys.cmd, "rules cannot be replaced");
      b->ops.push_back(ParseRuleOp(env, keys, spec.As<Napi::Object>(), cmd, field));
    } else if (kind == "route") {
      b->ops.push_back(ParseRouteOp(env, keys, spec.As<Napi::Object>(), cmd, field));
    } else {
      o.Bad(keys.kind, "expected rule or route");
    }
  }
  return RunAsync(
      env, "bpfkit:nlBatch",
      [b, netns](Failure& f) {
        if (b->ops.empty()) return;
        Socket sock;
        if (!sock.Open(netns, &f)) return;
        for (auto& op : b->ops)
          if (!op->Prepare(sock, &f)) return;
        // Build every request before sending any, each copied out and freed at once
        // (libnl allocates a page per message: keeping 10,000 alive costs more than
        // the kernel's work).
        Wire wire;
        wire.offsets.reserve(b->ops.size());
        for (auto& op : b->ops) {
          nl_msg* m = op->Build(&f);
          if (!m) return;
          wire.Append(m);
          nlmsg_free(m);
        }
        Failure transport;
        sock.Batch(wire, &b->results, &transport);  // transport errors are recorded per op
      },
      [b](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env);
        uint32_t n = 0;
        for (size_t i = 0; i < b->results.size(); i++) {
          const OpResult& r = b->results[i];
          if (!r.err) continue;
          Napi::Object o = Napi::Object::New(env);
          o.Set("index", static_cast<double>(i));
          o.Set("errno", r.err);
          o.Set("message", r.message);
          if (r.uncertain) o.Set("uncertain", true);
          out.Set(n++, o);
        }
        return out;
      });
}

void Init(Napi::Env env, Napi::Object exports) { exports.Set("nlBatch", Napi::Function::New(env, NlBatch)); }

}  // namespace

BPFKIT_REGISTER(Init);

}  // namespace nl
}  // namespace bpfkit
#endif  // BPFKIT_HAVE_LIBNL
