#include "util.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace bpfkit {

int DupFd(int fd) {
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return r < 0 ? -errno : r;
}

bool NetnsGuard::Enter(const std::string& path, Failure* f) {
  if (path.empty()) return true;
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    f->Set(e, "open", "cannot open network namespace '" + path + "'", e == ENOENT ? "ERR_NOT_FOUND" : "");
    return false;
  }
  saved_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved_ < 0) {
    int e = errno;
    close(target);
    f->Set(e, "open", "cannot open the current network namespace");
    return false;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(saved_);
    saved_ = -1;
    f->Set(e, "setns", "cannot enter network namespace '" + path + "'");
    return false;
  }
  close(target);
  return true;
}

NetnsGuard::~NetnsGuard() {
  if (saved_ >= 0) {
    // Returning to the namespace we came from cannot fail for a thread that was in it.
    (void)setns(saved_, CLONE_NEWNET);
    close(saved_);
  }
}

int ResolveIfname(const std::string& name, Failure* f, const std::string& netns) {
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) {
    f->Set(ENODEV, "if_nametoindex",
           "no such interface '" + name + "'" + (netns.empty() ? "" : " in network namespace " + netns),
           "ERR_NO_SUCH_INTERFACE");
  }
  return static_cast<int>(idx);
}

int ResolveIfindex(const Napi::Value& v, Failure* f, const std::string& netns) {
  if (v.IsNumber()) {
    int idx = v.As<Napi::Number>().Int32Value();
    char name[IF_NAMESIZE];
    if (idx <= 0 || !if_indextoname(static_cast<unsigned>(idx), name)) {
      f->Set(ENODEV, "if_indextoname",
             "no interface with index " + std::to_string(idx) + (netns.empty() ? "" : " in network namespace " + netns),
             "ERR_NO_SUCH_INTERFACE");
      return 0;
    }
    return idx;
  }
  return ResolveIfname(v.As<Napi::String>().Utf8Value(), f, netns);
}

namespace {

class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, const char* name, std::function<void(Failure&)> exec,
         std::function<Napi::Value(Napi::Env)> done, std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)),
        done_(std::move(done)) {
    for (auto& k : keep) {
      if (k.IsObject()) keep_.push_back(Napi::Persistent(k.As<Napi::Object>()));
    }
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { exec_(failure_); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failure_.failed) {
      deferred_.Reject(failure_.ToJs(env).Value());
      return;
    }
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void(Failure&)> exec_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::vector<Napi::ObjectReference> keep_;
  Failure failure_;
};

}  // namespace

Napi::Promise RunAsync(Napi::Env env, const char* name, std::function<void(Failure&)> exec,
                       std::function<Napi::Value(Napi::Env)> done, std::vector<Napi::Value> keep) {
  auto* w = new Worker(env, name, std::move(exec), std::move(done), std::move(keep));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

std::string OptString(const Napi::Object& o, const char* key, const std::string& def) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : def;
}

int64_t OptInt(const Napi::Object& o, const char* key, int64_t def) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : def;
}

bool OptBool(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}

bool CheckBpffs(const std::string& path, Failure* f) {
  constexpr long kBpfFsMagic = 0xcafe4a11;
  std::string dir = path;
  size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : dir.substr(0, slash));
  struct statfs st;
  if (statfs(dir.c_str(), &st) < 0) {
    int e = errno;
    f->Set(e, "statfs", "cannot pin at '" + path + "': directory '" + dir + "' is not accessible");
    return false;
  }
  if (static_cast<long>(st.f_type) != kBpfFsMagic) {
    f->Set(EINVAL, "statfs",
           "cannot pin at '" + path + "': '" + dir +
               "' is not on a BPF filesystem (mount one with: mount -t bpf bpf /sys/fs/bpf)",
           "ERR_INVALID_ARGUMENT");
    return false;
  }
  return true;
}

}  // namespace bpfkit
