// NativeLink: one bpf_link file descriptor (owned). Closing the last fd of an
// unpinned link detaches it; update() swaps the program atomically.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "fd_wrap.h"
#include "registry.h"

namespace bpfkit {

namespace {

class NativeLink : public FdWrap<NativeLink> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(
        env, "NativeLink",
        {InstanceMethod<&NativeLink::Update>("update"), InstanceMethod<&NativeLink::Detach>("detach"),
         InstanceMethod<&NativeLink::Info>("info"), FdWrap::FdAccessor(), FdWrap::PinMethod(), FdWrap::CloseMethod()});
    GetData(env)->ctors["NativeLink"] = Napi::Persistent(ctor);
    exports.Set("NativeLink", ctor);
  }
  explicit NativeLink(const Napi::CallbackInfo& info) : FdWrap(info, "link") {}

 private:
  // update(newProgFd, expectedOldProgFd?) - atomic program replacement.
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env);
    int prog = info[0].As<Napi::Number>().Int32Value();
    LIBBPF_OPTS(bpf_link_update_opts, opts);
    if (info[1].IsNumber()) {
      opts.old_prog_fd = info[1].As<Napi::Number>().Int32Value();
      opts.flags = BPF_F_REPLACE;
    }
    if (bpf_link_update(fd, prog, &opts) < 0) {
      int e = errno;
      ThrowErrno(env, e, "bpf(BPF_LINK_UPDATE)",
                 e == EPERM && info[1].IsNumber() ? "link no longer runs the expected program"
                                                  : "cannot replace the link's program",
                 e == EPERM && info[1].IsNumber() ? "ERR_BUSY" : "");
    }
    return env.Undefined();
  }
  // detach(): detaches even when pinned; the fd stays valid but defunct.
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    if (bpf_link_detach(LiveFd(info.Env())) < 0)
      ThrowErrno(info.Env(), errno, "bpf(BPF_LINK_DETACH)", "cannot detach link");
    return info.Env().Undefined();
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_link_info li;
    memset(&li, 0, sizeof li);
    uint32_t len = sizeof li;
    if (bpf_obj_get_info_by_fd(LiveFd(env), &li, &len) < 0)
      ThrowErrno(env, errno, "bpf(BPF_OBJ_GET_INFO_BY_FD)", "cannot read link info");
    Napi::Object o = Napi::Object::New(env);
    const char* tn = libbpf_bpf_link_type_str(static_cast<enum bpf_link_type>(li.type));
    o.Set("id", li.id);
    o.Set("type", tn ? tn : "unknown");
    o.Set("progId", li.prog_id);
    if (li.type == BPF_LINK_TYPE_XDP) o.Set("ifindex", li.xdp.ifindex);
    if (li.type == BPF_LINK_TYPE_NETNS) o.Set("netnsIno", li.netns.netns_ino);
    return o;
  }
};

void Init(Napi::Env env, Napi::Object exports) { NativeLink::Init(env, exports); }
BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
