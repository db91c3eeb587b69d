// Netlink (rtnetlink) plumbing shared by the rule and route bindings: a NETLINK_ROUTE
// socket opened inside a network namespace, batched requests whose per-message kernel
// errno is kept, dumps that restart when the kernel interrupts them, and interface
// name/index lookups through the same socket. libnl builds and parses the messages;
// the acks are read here so the kernel's errno and extended-ack text reach JS intact
// (libnl's own error codes would lose them).
#pragma once
#include <napi.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "errors.h"

namespace bpfkit {
namespace nl {

// Kernel answer for one request of a batch.
struct OpResult {
  int err = 0;             // positive errno, 0 on success
  std::string message;     // extended ack text, if the kernel gave one
  bool uncertain = false;  // the transport failed after sending: it may have been applied
};

// Requests serialised back to back, as they go on the wire.
struct Wire {
  std::vector<char> bytes;
  std::vector<size_t> offsets;  // start of each request
  void Append(nl_msg* m);
};

class Socket {
 public:
  Socket() = default;
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Creates the socket inside the namespace at `netns` (empty: the caller's). Only the
  // calling thread switches, and only while the socket is created: a netlink socket
  // stays bound to the namespace it was created in.
  bool Open(const std::string& netns, Failure* f);
  const std::string& netns() const { return netns_; }

  // Sends every message (in order) and fills results[i]. Messages are packed into
  // datagrams of up to ~32 KiB; only the last message of each datagram asks for an
  // ack (the kernel reports failures of the others on its own), so a batch costs a
  // few system calls instead of two per request. Returns false (and fills f) only
  // when the transport itself failed; per-request kernel errors go to results.
  bool Batch(Wire& wire, std::vector<OpResult>* results, Failure* f);

  // Sends `req` (a dump request) and calls each() for every reply message. Restarts
  // the dump (calling reset() first) when the kernel flags it NLM_F_DUMP_INTR, at most
  // kDumpAttempts times. `what` names the request in errors.
  bool Dump(nl_msg* req, const char* what, const std::function<bool(nlmsghdr*, Failure*)>& each,
            const std::function<void()>& reset, Failure* f);

  // One request, one reply (or error): for RTM_GETLINK by name.
  bool Request(nl_msg* req, const char* what, const std::function<void(nlmsghdr*)>& each, Failure* f);

  // Interface index of `name` in the socket's namespace (RTM_GETLINK). 0 and f filled
  // (ERR_NO_SUCH_INTERFACE, errno from the kernel) when it does not exist.
  int IfIndex(const std::string& name, Failure* f);
  // index -> name of every interface (one RTM_GETLINK dump).
  bool LinkNames(std::unordered_map<int, std::string>* out, Failure* f);

  static constexpr int kDumpAttempts = 8;

 private:
  bool SendRaw(const void* buf, size_t len, const char* what, Failure* f);
  // Reads one datagram (bounded wait) and calls on() for each message in it.
  bool RecvOnce(const char* what, const std::function<bool(nlmsghdr*)>& on, Failure* f);

  nl_sock* sk_ = nullptr;
  int fd_ = -1;
  uint32_t seq_ = 0;
  std::string netns_;
  std::vector<char> buf_;
  std::unordered_map<std::string, int> ifindex_cache_;
};

// Extended ack text of an NLMSG_ERROR message ("" if none).
std::string ExtAckMessage(const nlmsghdr* nlh);

// A request of a batch: parsed from JS on the JS thread, turned into a message on
// the worker (after interface names were resolved through the socket).
class Op {
 public:
  virtual ~Op() = default;
  // Resolve interface names etc. Returns false and fills f to abort the whole batch
  // before anything is sent.
  virtual bool Prepare(Socket& sock, Failure* f) { return true; }
  virtual nl_msg* Build(Failure* f) = 0;
};

// Property names, created once per call: a batch reads ~20 properties per request,
// and napi_get_named_property would intern each name again every time.
struct Keys {
  explicit Keys(Napi::Env env);
  Napi::String kind, cmd, spec, family, priority, table, action, fwmark, fwmask, iif, oif, src, srcLen, dst, dstLen,
      tos, ipProto, protocol, sport, dport, flags, metric, type, scope, prefsrc, nexthops, via, dev, weight;
};

// Reads the properties of one JS object once each; a wrong type throws
// ERR_INVALID_ARGUMENT naming `field.key` (the JS layer validates first, so this
// only guards the addon's own contract).
class Reader {
 public:
  Reader(Napi::Env env, const Napi::Object& o, const std::string& field) : env_(env), o_(o), field_(field) {}
  Napi::Value Get(const Napi::String& k) const { return o_.Get(k); }
  bool U32(const Napi::String& k, uint32_t* out) const;  // false when absent
  uint32_t NeedU32(const Napi::String& k) const;
  bool Str(const Napi::String& k, std::string* out) const;  // false when absent
  std::string NeedStr(const Napi::String& k) const;
  [[noreturn]] void Bad(const Napi::String& k, const char* what) const;
  const std::string& field() const { return field_; }

 private:
  Napi::Env env_;
  Napi::Object o_;
  const std::string& field_;
};

// Implemented in netlink_rule.cc / netlink_route.cc. `cmd` is "add", "replace" or
// "delete"; `field` names the op in validation errors.
std::unique_ptr<Op> ParseRuleOp(Napi::Env env, const Keys& k, const Napi::Object& spec, const std::string& cmd,
                                const std::string& field);
std::unique_ptr<Op> ParseRouteOp(Napi::Env env, const Keys& k, const Napi::Object& spec, const std::string& cmd,
                                 const std::string& field);

// Text form of a binary address (inet_ntop).
std::string AddrText(int family, const void* bin);
// nl_addr from text (already validated in JS); nullptr on failure.
nl_addr* AddrFromText(int family, const std::string& text, int prefixLen);

// Minimal JSON writer for dump results: JSON.parse on the JS side builds the objects
// much faster than one N-API call per property would.
class Json {
 public:
  Json& Raw(const char* s) {
    out_ += s;
    return *this;
  }
  Json& Key(const char* k);  // emits a separating comma when needed
  Json& Str(const std::string& s);
  Json& Num(double v);
  Json& BeginObj() {
    Sep();
    out_ += '{';
    first_ = true;
    return *this;
  }
  Json& EndObj() {
    out_ += '}';
    first_ = false;
    return *this;
  }
  Json& BeginArr() {
    Sep();
    out_ += '[';
    first_ = true;
    return *this;
  }
  Json& EndArr() {
    out_ += ']';
    first_ = false;
    return *this;
  }
  std::string& str() { return out_; }

 private:
  void Sep() {
    if (!first_ && !afterKey_) out_ += ',';
    afterKey_ = false;
  }
  std::string out_;
  bool first_ = true;
  bool afterKey_ = false;
};

// Turns a libnl error code into a Failure (used only for local build failures).
void SetNlError(Failure* f, int nlerr, const std::string& what);

}  // namespace nl
}  // namespace bpfkit
