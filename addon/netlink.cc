// The netlink bindings' helpers (JSON writer, addresses, argument reader) and the batch
// entry point nlBatch(ops, netns) -> Promise<failures>; the socket is in netlink_socket.cc.
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
  f->Set(e == NLE_NOMEM ? ENOMEM : EINVAL, "", what + ": " + nl_geterror(e),
         e == NLE_NOMEM ? "" : "ERR_INVALID_ARGUMENT");
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
    : kind(Napi::String::New(env, "kind")),
      cmd(Napi::String::New(env, "cmd")),
      spec(Napi::String::New(env, "spec")),
      family(Napi::String::New(env, "family")),
      priority(Napi::String::New(env, "priority")),
      table(Napi::String::New(env, "table")),
      action(Napi::String::New(env, "action")),
      fwmark(Napi::String::New(env, "fwmark")),
      fwmask(Napi::String::New(env, "fwmask")),
      iif(Napi::String::New(env, "iif")),
      oif(Napi::String::New(env, "oif")),
      src(Napi::String::New(env, "src")),
      srcLen(Napi::String::New(env, "srcLen")),
      dst(Napi::String::New(env, "dst")),
      dstLen(Napi::String::New(env, "dstLen")),
      tos(Napi::String::New(env, "tos")),
      ipProto(Napi::String::New(env, "ipProto")),
      protocol(Napi::String::New(env, "protocol")),
      sport(Napi::String::New(env, "sport")),
      dport(Napi::String::New(env, "dport")),
      flags(Napi::String::New(env, "flags")),
      metric(Napi::String::New(env, "metric")),
      type(Napi::String::New(env, "type")),
      scope(Napi::String::New(env, "scope")),
      prefsrc(Napi::String::New(env, "prefsrc")),
      nexthops(Napi::String::New(env, "nexthops")),
      via(Napi::String::New(env, "via")),
      dev(Napi::String::New(env, "dev")),
      weight(Napi::String::New(env, "weight")) {}

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
