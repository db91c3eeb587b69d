// TC attachment of sched_cls programs: tcx links (BPF_LINK_CREATE with
// BPF_TCX_INGRESS/EGRESS, kernel >= 6.6, ordered with BPF_F_BEFORE/AFTER) and the
// older clsact qdisc + direct-action cls_bpf filter (libbpf's bpf_tc_* netlink calls).
// Everything runs on the calling thread inside the given network namespace.
//
// Debian 12 ships libbpf 1.1 and 6.1 UAPI headers, which predate tcx: the attr
// layouts and constants below are the kernel's (include/uapi/linux/bpf.h, 6.6+),
// passed to the bpf() system call directly.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "fd_wrap.h"
#include "registry.h"

namespace bpfkit {

namespace {

// enum bpf_attach_type / bpf_link_type values and attach flags added in Linux 6.6.
constexpr uint32_t kTcxIngress = 46;    // BPF_TCX_INGRESS
constexpr uint32_t kTcxEgress = 47;     // BPF_TCX_EGRESS
constexpr uint32_t kLinkTypeTcx = 11;   // BPF_LINK_TYPE_TCX
constexpr uint32_t kFBefore = 1u << 3;  // BPF_F_BEFORE
constexpr uint32_t kFAfter = 1u << 4;   // BPF_F_AFTER
constexpr uint32_t kFId = 1u << 5;      // BPF_F_ID
constexpr uint32_t kFLink = 1u << 13;   // BPF_F_LINK
#ifdef BPF_F_BEFORE
static_assert(BPF_F_BEFORE == kFBefore && BPF_F_AFTER == kFAfter && BPF_F_ID == kFId, "uapi flags");
#endif

// union bpf_attr.link_create with its tcx member.
struct TcxLinkCreateAttr {
  uint32_t prog_fd;
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t flags;
  uint32_t relative_fd_or_id;
  uint32_t pad;
  uint64_t expected_revision;
};
// union bpf_attr.query as extended for mprog hooks (tcx).
struct MprogQueryAttr {
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t query_flags;
  uint32_t attach_flags;
  uint64_t prog_ids;
  uint32_t count;
  uint32_t pad;
  uint64_t prog_attach_flags;
  uint64_t link_ids;
  uint64_t link_attach_flags;
  uint64_t revision;
};
// Both fit in the 6.1 union with room to spare; the kernel wants the tail zeroed.
static_assert(sizeof(MprogQueryAttr) <= sizeof(union bpf_attr), "attr size");

template <typename A>
long BpfSys(int cmd, A* a) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  memcpy(&attr, a, sizeof *a);
  long r = syscall(__NR_bpf, cmd, &attr, sizeof attr);
  if (r >= 0) memcpy(a, &attr, sizeof *a);
  return r;
}

uint32_t TcxAttachType(const std::string& dir) { return dir == "egress" ? kTcxEgress : kTcxIngress; }
enum bpf_tc_attach_point TcPoint(const std::string& dir) { return dir == "egress" ? BPF_TC_EGRESS : BPF_TC_INGRESS; }

std::string Where(int ifindex, const std::string& dir, const std::string& netns) {
  return dir + " of interface " + std::to_string(ifindex) + (netns.empty() ? "" : " in " + netns);
}

// Enters info[netnsArg] and resolves info[targetArg]; throws on failure.
int EnterAndResolve(const Napi::CallbackInfo& info, size_t targetArg, const std::string& netns, NetnsGuard* ns) {
  Napi::Env env = info.Env();
  Failure f;
  if (!ns->Enter(netns, &f)) f.Throw(env);
  int ifindex = ResolveIfindex(info[targetArg], &f, netns);
  if (!ifindex) f.Throw(env);
  return ifindex;
}

std::string StrArg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
}

// tcxProbe() -> boolean: does this kernel have tcx hooks? A read-only BPF_PROG_QUERY on
// the loopback device: kernels without tcx reject the attach type with EINVAL.
Napi::Value TcxProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MprogQueryAttr q{};
  q.target_ifindex = 1;  // lo exists in every namespace
  q.attach_type = kTcxIngress;
  if (BpfSys(BPF_PROG_QUERY, &q) == 0) return Napi::Boolean::New(env, true);
  int e = errno;
  if (e == EINVAL || e == EOPNOTSUPP || e == ENOTSUP) return Napi::Boolean::New(env, false);
  ThrowErrno(env, e, "bpf(BPF_PROG_QUERY)", "cannot probe for tcx support");
}

// tcxAttach(progFd, target, direction, flags, relative, expectedRevision, netns)
//   -> { link: NativeLink, ifindex }
// flags: BPF_F_BEFORE/AFTER, with BPF_F_LINK or BPF_F_ID qualifying `relative`.
Napi::Value TcxAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t prog = info[0].As<Napi::Number>().Uint32Value();
  std::string dir = StrArg(info, 2);
  std::string netns = StrArg(info, 6);
  TcxLinkCreateAttr a{};
  a.prog_fd = prog;
  a.attach_type = TcxAttachType(dir);
  a.flags = info[3].As<Napi::Number>().Uint32Value();
  if (a.flags & ~(kFBefore | kFAfter | kFId | kFLink)) ThrowInvalid(env, "flags", "unexpected tcx attach flags");
  a.relative_fd_or_id = info[4].As<Napi::Number>().Uint32Value();
  a.expected_revision = static_cast<uint64_t>(info[5].As<Napi::Number>().Int64Value());
  NetnsGuard ns;
  int ifindex = EnterAndResolve(info, 1, netns, &ns);
  a.target_ifindex = static_cast<uint32_t>(ifindex);
  long link = BpfSys(BPF_LINK_CREATE, &a);
  if (link < 0) {
    int e = errno;
    std::string where = Where(ifindex, dir, netns);
    const char* sc = "bpf(BPF_LINK_CREATE)";
    if (e == EEXIST) ThrowErrno(env, e, sc, "this program is already attached at the tcx " + where, "ERR_EXISTS");
    if (e == ESTALE) ThrowErrno(env, e, sc, "the tcx " + where + " changed since the expected revision", "ERR_BUSY");
    if (e == ERANGE)
      ThrowErrno(env, e, sc,
                 a.flags & (kFBefore | kFAfter) ? "the before/after anchor is not attached at the tcx " + where
                                                : "too many programs at the tcx " + where,
                 a.flags & (kFBefore | kFAfter) ? "ERR_NOT_FOUND" : "ERR_BUSY");
    if (e == ENOENT) ThrowErrno(env, e, sc, "the before/after anchor does not exist", "ERR_NOT_FOUND");
    ThrowErrno(env, e, sc, "cannot attach the program at the tcx " + where);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("link", NewWrapped(env, "NativeLink", static_cast<int>(link)));
  o.Set("ifindex", ifindex);
  return o;
}

// tcxQuery(target, direction, netns) -> { ifindex, revision, programs: [{ programId, linkId }] }
// in the order the kernel runs them.
Napi::Value TcxQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = StrArg(info, 1);
  std::string netns = StrArg(info, 2);
  NetnsGuard ns;
  int ifindex = EnterAndResolve(info, 0, netns, &ns);
  std::vector<uint32_t> progs, links;
  MprogQueryAttr q{};
  // Two rounds: the hook may grow between the count and the read (then ENOSPC: retry).
  for (int attempt = 0; attempt < 4; attempt++) {
    progs.assign(q.count + 1, 0);
    links.assign(q.count + 1, 0);
    q = MprogQueryAttr{};
    q.target_ifindex = static_cast<uint32_t>(ifindex);
    q.attach_type = TcxAttachType(dir);
    q.prog_ids = reinterpret_cast<uintptr_t>(progs.data());
    q.link_ids = reinterpret_cast<uintptr_t>(links.data());
    q.count = static_cast<uint32_t>(progs.size());
    if (BpfSys(BPF_PROG_QUERY, &q) == 0) break;
    int e = errno;
    if (e != ENOSPC || attempt == 3)
      ThrowErrno(env, e, "bpf(BPF_PROG_QUERY)", "cannot list the tcx " + Where(ifindex, dir, netns));
  }
  Napi::Object o = Napi::Object::New(env);
  Napi::Array arr = Napi::Array::New(env, q.count);
  for (uint32_t i = 0; i < q.count && i < progs.size(); i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("programId", progs[i]);
    p.Set("linkId", links[i]);
    arr.Set(i, p);
  }
  o.Set("ifindex", ifindex);
  o.Set("revision", static_cast<double>(q.revision));
  o.Set("programs", arr);
  return o;
}

// tcLinkInfo(linkFd) -> { id, type, progId, ifindex?, direction? } (link types libbpf 1.1
// cannot name are reported by number, tcx by name).
Napi::Value TcLinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct bpf_link_info li;
  memset(&li, 0, sizeof li);
  uint32_t len = sizeof li;
  if (bpf_obj_get_info_by_fd(fd, &li, &len) < 0)
    ThrowErrno(env, errno, "bpf(BPF_OBJ_GET_INFO_BY_FD)", "cannot read link info");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", li.id);
  o.Set("progId", li.prog_id);
  if (li.type == kLinkTypeTcx) {
    // tcx { __u32 ifindex; __u32 attach_type; } sits where xdp { __u32 ifindex; } does.
    uint32_t tcx[2];
    memcpy(tcx, &li.xdp, sizeof tcx);
    o.Set("type", "tcx");
    o.Set("ifindex", tcx[0]);
    o.Set("direction", tcx[1] == kTcxEgress ? "egress" : tcx[1] == kTcxIngress ? "ingress" : "unknown");
  } else {
    const char* tn = libbpf_bpf_link_type_str(static_cast<enum bpf_link_type>(li.type));
    o.Set("type", tn ? std::string(tn) : "type " + std::to_string(li.type));
  }
  return o;
}

// clsactAttach(progFd, target, direction, handle, priority, replace, netns)
//   -> { ifindex, handle, priority, createdQdisc }
// Creates the clsact qdisc when missing (removed again if the attach then fails).
Napi::Value ClsactAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog = info[0].As<Napi::Number>().Int32Value();
  std::string dir = StrArg(info, 2);
  uint32_t handle = info[3].As<Napi::Number>().Uint32Value();
  uint32_t priority = info[4].As<Napi::Number>().Uint32Value();
  bool replace = info[5].ToBoolean().Value();
  std::string netns = StrArg(info, 6);
  NetnsGuard ns;
  int ifindex = EnterAndResolve(info, 1, netns, &ns);
  std::string where = Where(ifindex, dir, netns);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = TcPoint(dir));
  bool created = false;
  if (!replace) {
    int r = bpf_tc_hook_create(&hook);
    if (r < 0 && r != -EEXIST)
      ThrowErrno(env, -r, "netlink(RTM_NEWQDISC)", "cannot add a clsact qdisc on the " + where);
    created = r == 0;
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog, .flags = replace ? static_cast<uint32_t>(BPF_TC_F_REPLACE) : 0u,
              .handle = handle, .priority = priority);
  int r = bpf_tc_attach(&hook, &opts);
  if (r < 0) {
    if (created) {
      LIBBPF_OPTS(bpf_tc_hook, both, .ifindex = ifindex,
                  .attach_point = static_cast<enum bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
      bpf_tc_hook_destroy(&both);
    }
    const char* sc = "netlink(RTM_NEWTFILTER)";
    if (r == -EEXIST)
      ThrowErrno(env, -r, sc,
                 "a filter with handle " + std::to_string(handle) + " and priority " + std::to_string(priority) +
                     " already exists on the clsact " + where,
                 "ERR_EXISTS");
    if (replace && r == -ENOENT)
      ThrowErrno(env, -r, sc, "the clsact filter to replace is gone from the " + where, "ERR_NOT_FOUND");
    ThrowErrno(env, -r, sc, "cannot attach a clsact filter on the " + where);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", ifindex);
  o.Set("handle", opts.handle);
  o.Set("priority", opts.priority);
  o.Set("createdQdisc", created);
  return o;
}

// clsactQuery(ifindex, direction, handle, priority, netns) -> program id, 0 when the filter is gone.
Napi::Value ClsactQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = StrArg(info, 1);
  std::string netns = StrArg(info, 4);
  NetnsGuard ns;
  int ifindex = EnterAndResolve(info, 0, netns, &ns);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = TcPoint(dir));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = info[2].As<Napi::Number>().Uint32Value(),
              .priority = info[3].As<Napi::Number>().Uint32Value());
  int r = bpf_tc_query(&hook, &opts);
  if (r == -ENOENT || r == -EINVAL) return Napi::Number::New(env, 0);  // EINVAL: no clsact qdisc at all
  if (r < 0)
    ThrowErrno(env, -r, "netlink(RTM_GETTFILTER)",
               "cannot query the clsact filter on the " + Where(ifindex, dir, netns));
  return Napi::Number::New(env, opts.prog_id);
}

// clsactDetach(ifindex, direction, handle, priority, netns) -> boolean (false: already gone).
// The clsact qdisc stays: deleting it is not conditional on it being empty, so it could
// take down filters someone else added meanwhile.
Napi::Value ClsactDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = StrArg(info, 1);
  std::string netns = StrArg(info, 4);
  NetnsGuard ns;
  Failure f;
  if (!ns.Enter(netns, &f)) {
    if (f.code == "ERR_NOT_FOUND") return Napi::Boolean::New(env, false);  // namespace gone, filter with it
    f.Throw(env);
  }
  int ifindex = ResolveIfindex(info[0], &f, netns);
  if (!ifindex) return Napi::Boolean::New(env, false);  // interface gone, filter with it
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = TcPoint(dir));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = info[2].As<Napi::Number>().Uint32Value(),
              .priority = info[3].As<Napi::Number>().Uint32Value());
  int r = bpf_tc_detach(&hook, &opts);
  if (r == -ENOENT || r == -EINVAL) return Napi::Boolean::New(env, false);
  if (r < 0)
    ThrowErrno(env, -r, "netlink(RTM_DELTFILTER)",
               "cannot detach the clsact filter on the " + Where(ifindex, dir, netns));
  return Napi::Boolean::New(env, true);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("tcxProbe", Napi::Function::New(env, TcxProbe));
  exports.Set("tcxAttach", Napi::Function::New(env, TcxAttach));
  exports.Set("tcxQuery", Napi::Function::New(env, TcxQuery));
  exports.Set("tcLinkInfo", Napi::Function::New(env, TcLinkInfo));
  exports.Set("clsactAttach", Napi::Function::New(env, ClsactAttach));
  exports.Set("clsactQuery", Napi::Function::New(env, ClsactQuery));
  exports.Set("clsactDetach", Napi::Function::New(env, ClsactDetach));
}
BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
