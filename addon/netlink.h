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
  int err = 0;          // positive errno, 0 on success
  std::string message;  // extended ack text, if the kernel gave one
  bool uncertain = false;  // the transport failed after sending: it may have been applied
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
  bool Batch(const std::vector<nl_msg*>& msgs, std::vector<OpResult>* results, Failure* f);

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

// Implemented in netlink_rule.cc / netlink_route.cc. `cmd` is "add", "replace" or
// "delete"; `field` names the op in validation errors.
std::unique_ptr<Op> ParseRuleOp(Napi::Env env, const Napi::Object& spec, const std::string& cmd, const std::string& field);
std::unique_ptr<Op> ParseRouteOp(Napi::Env env, const Napi::Object& spec, const std::string& cmd, const std::string& field);

// Small JS readers (throw ERR_INVALID_ARGUMENT naming `field.key` on a wrong type).
uint32_t GetU32(Napi::Env env, const Napi::Object& o, const char* key, const std::string& field);
bool HasKey(const Napi::Object& o, const char* key);
std::string GetStr(Napi::Env env, const Napi::Object& o, const char* key, const std::string& field);

// Text form of a binary address (inet_ntop).
std::string AddrText(int family, const void* bin);
// nl_addr from text (already validated in JS); nullptr on failure.
nl_addr* AddrFromText(int family, const std::string& text, int prefixLen);

// Turns a libnl error code into a Failure (used only for local build failures).
void SetNlError(Failure* f, int nlerr, const std::string& what);

}  // namespace nl
}  // namespace bpfkit
