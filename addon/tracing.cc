// Tracing programs: attachment of tp_btf / fentry / fexit / fmod_ret (BPF_RAW_TRACEPOINT_OPEN
// with no name: the target was fixed at load), raw_tp (by tracepoint name), tracepoint and
// kprobe / kretprobe (a perf event opened here, then BPF_LINK_CREATE with BPF_PERF_EVENT,
// so every attachment is a bpf_link that dies with its last fd), and the kernel's BTF enums
// (drop reasons and the like) by name.
//
// Feature probing happens here, where the facts are: a missing kprobe PMU, tracefs that is
// not mounted, or a trampoline the kernel refuses become ERR_UNSUPPORTED naming what is
// missing, never a bare errno.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "fd_wrap.h"
#include "registry.h"

namespace bpfkit {

namespace {

const char* const kKprobePmu = "/sys/bus/event_source/devices/kprobe";
const char* const kTracefsRoots[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};

bool ReadText(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::getline(in, *out);
  return true;
}

// "config:9" -> 9 (bit of the retprobe flag in a PMU format file).
int FormatBit(const std::string& path, int def) {
  std::string s;
  if (!ReadText(path, &s)) return def;
  size_t colon = s.find(':');
  if (colon == std::string::npos) return def;
  return atoi(s.c_str() + colon + 1);
}

int PerfEventOpen(struct perf_event_attr* attr) {
  // pid -1, cpu 0: a tracepoint or kprobe event fires on every CPU once a program is attached.
  return static_cast<int>(syscall(__NR_perf_event_open, attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
}

// Links a program to an open perf event (BPF_LINK_CREATE / BPF_PERF_EVENT, Linux >= 5.15);
// the link holds the event, so the caller's fd is closed either way.
int LinkPerfEvent(Napi::Env env, int prog, int pfd, uint64_t cookie, const std::string& what) {
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  opts.perf_event.bpf_cookie = cookie;
  int link = bpf_link_create(prog, pfd, BPF_PERF_EVENT, &opts);
  int e = errno;
  close(pfd);
  if (link < 0) {
    if (e == EINVAL || e == EOPNOTSUPP)
      ThrowErrno(env, e, "bpf(BPF_LINK_CREATE)",
                 what + ": the kernel cannot link a program to a perf event (BPF_PERF_EVENT links need Linux 5.15)",
                 "ERR_UNSUPPORTED");
    ThrowErrno(env, e, "bpf(BPF_LINK_CREATE)", "cannot attach to " + what);
  }
  return link;
}

// The tracefs id of tracepoint "category/name", or throws.
uint64_t TracepointId(Napi::Env env, const std::string& target) {
  std::string root;
  for (const char* r : kTracefsRoots) {
    if (access((std::string(r) + "/events").c_str(), F_OK) == 0) {
      root = r;
      break;
    }
  }
  if (root.empty())
    ThrowErrno(env, ENOENT, "",
               "tracepoint '" + target +
                   "': tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing), "
                   "which a tracepoint program needs for the event id; tp_btf and raw_tp programs need no tracefs",
               "ERR_UNSUPPORTED");
  std::string id;
  if (!ReadText(root + "/events/" + target + "/id", &id) || id.empty())
    ThrowErrno(env, ENOENT, "",
               "tracepoint '" + target + "' does not exist on this kernel (no " + root + "/events/" + target + ")",
               "ERR_NOT_FOUND");
  return strtoull(id.c_str(), nullptr, 10);
}

// tracingAttach(progFd, kind, target, cookie) -> NativeLink
//   kind: tp_btf | fentry | fexit | fmod_ret | raw_tp | tracepoint | kprobe | kretprobe
//   target: tracepoint name (raw_tp), "category/name" (tracepoint), "func[+offset]" (kprobe)
Napi::Value TracingAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog = info[0].As<Napi::Number>().Int32Value();
  std::string kind = info[1].As<Napi::String>().Utf8Value();
  std::string target = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  uint64_t cookie = 0;
  if (info[3].IsBigInt()) {
    bool lossless;
    cookie = info[3].As<Napi::BigInt>().Uint64Value(&lossless);
  }
  int link = -1;
  if (kind == "tp_btf" || kind == "fentry" || kind == "fexit" || kind == "fmod_ret") {
    link = bpf_raw_tracepoint_open(nullptr, prog);
    if (link < 0) {
      int e = errno;
      bool trampoline = kind != "tp_btf";
      if (trampoline && (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EINVAL || e == 524))
        ThrowErrno(
            env, e, "bpf(BPF_RAW_TRACEPOINT_OPEN)",
            kind + " '" + target + "': the kernel refuses BPF trampolines here (" + strerror(e) +
                "; needs CONFIG_FUNCTION_TRACER, ftrace enabled and no lockdown): use tp_btf or raw_tp tracepoints",
            "ERR_UNSUPPORTED");
      ThrowErrno(env, e, "bpf(BPF_RAW_TRACEPOINT_OPEN)", "cannot attach " + kind + " program to '" + target + "'");
    }
  } else if (kind == "raw_tp") {
    link = bpf_raw_tracepoint_open(target.c_str(), prog);
    if (link < 0) {
      int e = errno;
      if (e == ENOENT)
        ThrowErrno(env, e, "bpf(BPF_RAW_TRACEPOINT_OPEN)",
                   "raw tracepoint '" + target + "' does not exist on this kernel", "ERR_NOT_FOUND");
      ThrowErrno(env, e, "bpf(BPF_RAW_TRACEPOINT_OPEN)", "cannot attach raw_tp program to '" + target + "'");
    }
  } else if (kind == "tracepoint") {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof attr;
    attr.config = TracepointId(env, target);
    int pfd = PerfEventOpen(&attr);
    if (pfd < 0) ThrowErrno(env, errno, "perf_event_open", "cannot open tracepoint '" + target + "'");
    link = LinkPerfEvent(env, prog, pfd, cookie, "tracepoint '" + target + "'");
  } else if (kind == "kprobe" || kind == "kretprobe") {
    std::string type;
    if (!ReadText(std::string(kKprobePmu) + "/type", &type) || type.empty())
      ThrowErrno(env, ENOENT, "",
                 kind + " '" + target + "': this kernel has no kprobes (no kprobe PMU at " + kKprobePmu +
                     ": built without CONFIG_KPROBES / CONFIG_KPROBE_EVENTS): use tp_btf or raw_tp tracepoints",
                 "ERR_UNSUPPORTED");
    std::string func = target;
    uint64_t offset = 0;
    size_t plus = target.find('+');
    if (plus != std::string::npos) {
      func = target.substr(0, plus);
      offset = strtoull(target.c_str() + plus + 1, nullptr, 0);
    }
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = static_cast<uint32_t>(atoi(type.c_str()));
    attr.config1 = reinterpret_cast<uint64_t>(func.c_str());
    attr.config2 = offset;
    if (kind == "kretprobe") attr.config |= 1ull << FormatBit(std::string(kKprobePmu) + "/format/retprobe", 0);
    int pfd = PerfEventOpen(&attr);
    if (pfd < 0) {
      int e = errno;
      if (e == ENOENT || e == EINVAL)
        ThrowErrno(env, e, "perf_event_open",
                   kind + ": no kernel function '" + func + "' to probe (or it is not probeable)", "ERR_NOT_FOUND");
      ThrowErrno(env, e, "perf_event_open", "cannot open a " + kind + " on '" + target + "'");
    }
    link = LinkPerfEvent(env, prog, pfd, cookie, kind + " '" + target + "'");
  } else {
    ThrowInvalid(env, "kind", "unknown tracing attach kind '" + kind + "'");
  }
  return NewWrapped(env, "NativeLink", link);
}

// The running kernel's BTF, loaded once per process (never freed: it is the kernel's, and
// small next to the process).
struct btf* VmlinuxBtf(Napi::Env env) {
  static struct btf* btf = nullptr;
  if (btf) return btf;
  struct btf* b = btf__load_vmlinux_btf();
  if (!b)
    ThrowErrno(env, errno, "", "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF)",
               "ERR_UNSUPPORTED");
  btf = b;
  return btf;
}

// kernelEnum(name) -> [[enumerator, value], ...] or null when the kernel has no such enum.
Napi::Value KernelEnum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  struct btf* btf = VmlinuxBtf(env);
  int id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_ENUM);
  bool is64 = false;
  if (id < 0) {
    id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_ENUM64);
    is64 = true;
  }
  if (id < 0) return env.Null();
  const struct btf_type* t = btf__type_by_id(btf, id);
  Napi::Array out = Napi::Array::New(env);
  for (unsigned i = 0; i < btf_vlen(t); i++) {
    Napi::Array pair = Napi::Array::New(env, 2);
    double v;
    const char* n;
    if (is64) {
      const struct btf_enum64* e = btf_enum64(t) + i;
      n = btf__name_by_offset(btf, e->name_off);
      v = static_cast<double>(btf_enum64_value(e));
    } else {
      const struct btf_enum* e = btf_enum(t) + i;
      n = btf__name_by_offset(btf, e->name_off);
      v = btf_kflag(t) ? static_cast<double>(e->val) : static_cast<double>(static_cast<uint32_t>(e->val));
    }
    pair.Set(0u, n ? n : "");
    pair.Set(1u, v);
    out.Set(i, pair);
  }
  return out;
}

// tracingProbe() -> { kprobe: bool, tracefs: string | null }: facts read from sysfs.
Napi::Value TracingProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kprobe", access((std::string(kKprobePmu) + "/type").c_str(), R_OK) == 0);
  o.Set("tracefs", env.Null());
  for (const char* r : kTracefsRoots) {
    if (access((std::string(r) + "/events").c_str(), F_OK) == 0) {
      o.Set("tracefs", r);
      break;
    }
  }
  return o;
}

// fentryProbe() -> boolean: loads a two-instruction fentry program on a kernel function
// (the kernel checks trampolines at load) and closes it. EPERM (lockdown, no ftrace) and
// EOPNOTSUPP/EINVAL/ENOTSUPP are "no"; anything else is thrown.
Napi::Value FentryProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct btf* btf = VmlinuxBtf(env);
  int id = -1;
  for (const char* fn : {"bpf_fentry_test1", "udp_rcv", "ip_rcv", "__x64_sys_getpid"}) {
    id = btf__find_by_name_kind(btf, fn, BTF_KIND_FUNC);
    if (id > 0) break;
  }
  if (id <= 0) return Napi::Boolean::New(env, false);
  struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY,
              .attach_btf_id = static_cast<uint32_t>(id));
  int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "bpfkit_probe", "GPL", insns, 2, &opts);
  if (fd >= 0) {
    close(fd);
    return Napi::Boolean::New(env, true);
  }
  int e = errno;
  if (e == EPERM || e == EOPNOTSUPP || e == EINVAL || e == 524 || e == ESRCH) return Napi::Boolean::New(env, false);
  ThrowErrno(env, e, "bpf(BPF_PROG_LOAD)", "cannot probe for fentry support");
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("fentryProbe", Napi::Function::New(env, FentryProbe));
  exports.Set("tracingAttach", Napi::Function::New(env, TracingAttach));
  exports.Set("tracingProbe", Napi::Function::New(env, TracingProbe));
  exports.Set("kernelEnum", Napi::Function::New(env, KernelEnum));
}
BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
