// Small shared helpers: owned file descriptors, network-namespace switching on the
// calling thread, promise-returning workers, argument readers.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace bpfkit {

// dup with O_CLOEXEC; returns -errno on failure.
int DupFd(int fd);

// Switches the calling thread into the network namespace at `path` (e.g.
// /run/netns/NAME) for the guard's lifetime; an empty path does nothing. setns
// moves only this thread, so work on the libuv pool takes the namespace as an
// argument and switches on the thread that makes the syscall.
class NetnsGuard {
 public:
  NetnsGuard() = default;
  // Returns false and fills `f` on failure.
  bool Enter(const std::string& path, Failure* f);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  int saved_ = -1;
};

// Resolves an interface given by name or index inside a namespace (caller already
// switched). Returns 0 and fills f when it does not exist.
int ResolveIfindex(const Napi::Value& v, Failure* f, const std::string& netns);
int ResolveIfname(const std::string& name, Failure* f, const std::string& netns);

// Runs `exec` on the libuv thread pool and settles a promise: `done` builds the
// resolution value on the JS thread; a Failure set by exec rejects with a BpfkitError.
// `keep` holds JS objects (wrappers, buffers) alive until the work is done.
Napi::Promise RunAsync(Napi::Env env, const char* name, std::function<void(Failure&)> exec,
                       std::function<Napi::Value(Napi::Env)> done, std::vector<Napi::Value> keep = {});

std::string OptString(const Napi::Object& o, const char* key, const std::string& def = "");
int64_t OptInt(const Napi::Object& o, const char* key, int64_t def);
bool OptBool(const Napi::Object& o, const char* key, bool def);

// Is `path`'s directory on a BPF filesystem? Fills f with a clear error if not.
bool CheckBpffs(const std::string& path, Failure* f);

}  // namespace bpfkit
