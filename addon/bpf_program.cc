// NativeProgram: one loaded BPF program fd (owned): info, XDP attach (bpf_link,
// inside a given network namespace) and BPF_PROG_TEST_RUN (incl. XDP live frames).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "fd_wrap.h"
#include "registry.h"

namespace bpfkit {

namespace {

const char* XdpModeName(int attachMode) {
  switch (attachMode) {
    case XDP_ATTACHED_DRV:
      return "native";
    case XDP_ATTACHED_SKB:
      return "generic";
    case XDP_ATTACHED_HW:
      return "offload";
    case XDP_ATTACHED_MULTI:
      return "multi";
    default:
      return "none";
  }
}

struct XdpState {
  int mode = 0;
  uint32_t progId = 0;
};

bool QueryXdp(int ifindex, XdpState* st, Failure* f) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  int r = bpf_xdp_query(ifindex, 0, &q);
  if (r < 0) {
    f->Set(-r, "netlink(RTM_GETLINK)", "cannot query XDP state of interface " + std::to_string(ifindex));
    return false;
  }
  st->mode = q.attach_mode;
  st->progId = q.prog_id ? q.prog_id : (q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id);
  return true;
}

class NativeProgram : public FdWrap<NativeProgram> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(
        env, "NativeProgram",
        {InstanceMethod<&NativeProgram::Info>("info"), InstanceMethod<&NativeProgram::AttachXdp>("attachXdp"),
         InstanceMethod<&NativeProgram::TestRun>("testRun"), FdWrap::FdAccessor(), FdWrap::PinMethod(),
         FdWrap::CloseMethod()});
    GetData(env)->ctors["NativeProgram"] = Napi::Persistent(ctor);
    exports.Set("NativeProgram", ctor);
  }
  explicit NativeProgram(const Napi::CallbackInfo& info) : FdWrap(info, "program") {}

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof pi);
    uint32_t len = sizeof pi;
    if (bpf_obj_get_info_by_fd(LiveFd(env), &pi, &len) < 0)
      ThrowErrno(env, errno, "bpf(BPF_OBJ_GET_INFO_BY_FD)", "cannot read program info");
    Napi::Object o = Napi::Object::New(env);
    const char* tn = libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(pi.type));
    char tag[2 * BPF_TAG_SIZE + 1];
    for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
    o.Set("id", pi.id);
    o.Set("name", pi.name);
    o.Set("type", tn ? tn : "unknown");
    o.Set("tag", tag);
    o.Set("btfId", pi.btf_id);
    return o;
  }

  // attachXdp(ifnameOrIndex, flags, netnsPath) -> { link: NativeLink, mode, ifindex }
  Napi::Value AttachXdp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env);
    uint32_t flags = info[1].As<Napi::Number>().Uint32Value();
    std::string netns = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
    Failure f;
    NetnsGuard ns;
    if (!ns.Enter(netns, &f)) f.Throw(env);
    int ifindex = ResolveIfindex(info[0], &f, netns);
    if (!ifindex) f.Throw(env);
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
    int link = bpf_link_create(fd, ifindex, BPF_XDP, &opts);
    if (link < 0) {
      int e = errno;
      std::string where = "interface " + std::to_string(ifindex) + (netns.empty() ? "" : " in " + netns);
      if (e == EBUSY || e == EEXIST)
        ThrowErrno(env, e, "bpf(BPF_LINK_CREATE)", "an XDP program is already attached to " + where, "ERR_BUSY");
      if (e == EOPNOTSUPP || e == EINVAL)
        ThrowErrno(
            env, e, "bpf(BPF_LINK_CREATE)",
            "cannot attach XDP in the requested mode to " + where +
                (flags & XDP_FLAGS_DRV_MODE ? " (the driver may not support native XDP; try mode 'generic')" : ""),
            "ERR_UNSUPPORTED");
      ThrowErrno(env, e, "bpf(BPF_LINK_CREATE)", "cannot attach XDP program to " + where);
    }
    XdpState st;
    Failure qf;
    QueryXdp(ifindex, &st, &qf);
    Napi::Object o = Napi::Object::New(env);
    o.Set("link", NewWrapped(env, "NativeLink", link));
    o.Set("mode", XdpModeName(st.mode));
    o.Set("ifindex", ifindex);
    return o;
  }

  // testRun({ data, repeat, dataOutSize, ctx, ctxOut, flags, batchSize, netns }) -> Promise<{retval, data, durationNs,
  // ctx?}> ctxOut: true returns the context as the program left it (same size as ctx).
  Napi::Value TestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env);
    Napi::Object o = info[0].As<Napi::Object>();
    struct Baton {
      std::vector<uint8_t> in, out, ctx, ctxOut;
      uint32_t repeat = 1, flags = 0, batch = 0, retval = 0, duration = 0, outSize = 0;
      bool wantOut = true;
      std::string netns;
    };
    auto b = std::make_shared<Baton>();
    Napi::Uint8Array data = o.Get("data").As<Napi::Uint8Array>();
    b->in.assign(data.Data(), data.Data() + data.ByteLength());
    b->repeat = static_cast<uint32_t>(OptInt(o, "repeat", 1));
    b->flags = static_cast<uint32_t>(OptInt(o, "flags", 0));
    b->batch = static_cast<uint32_t>(OptInt(o, "batchSize", 0));
    b->netns = OptString(o, "netns");
    b->wantOut = !(b->flags & BPF_F_TEST_XDP_LIVE_FRAMES);
    size_t outSize = static_cast<size_t>(OptInt(o, "dataOutSize", 0));
    if (b->wantOut) b->out.resize(outSize ? outSize : std::max<size_t>(b->in.size() + 512, 4096));
    Napi::Value ctx = o.Get("ctx");
    if (ctx.IsTypedArray()) {
      Napi::Uint8Array c = ctx.As<Napi::Uint8Array>();
      b->ctx.assign(c.Data(), c.Data() + c.ByteLength());
      if (OptBool(o, "ctxOut", false)) b->ctxOut.resize(b->ctx.size());
    }
    return RunAsync(
        env, "bpfkit.testRun",
        [fd, b](Failure& f) {
          NetnsGuard ns;
          if (!ns.Enter(b->netns, &f)) return;
          LIBBPF_OPTS(bpf_test_run_opts, t);
          t.data_in = b->in.data();
          t.data_size_in = static_cast<uint32_t>(b->in.size());
          if (b->wantOut) {
            t.data_out = b->out.data();
            t.data_size_out = static_cast<uint32_t>(b->out.size());
          }
          if (!b->ctx.empty()) {
            t.ctx_in = b->ctx.data();
            t.ctx_size_in = static_cast<uint32_t>(b->ctx.size());
          }
          if (!b->ctxOut.empty()) {
            t.ctx_out = b->ctxOut.data();
            t.ctx_size_out = static_cast<uint32_t>(b->ctxOut.size());
          }
          t.repeat = b->repeat;
          t.flags = b->flags;
          t.batch_size = b->batch;
          if (bpf_prog_test_run_opts(fd, &t) < 0) {
            int e = errno;
            f.Set(e, "bpf(BPF_PROG_TEST_RUN)", "test run failed", e == ENOTSUP || e == 524 ? "ERR_UNSUPPORTED" : "");
            return;
          }
          b->retval = t.retval;
          b->duration = t.duration;
          b->outSize = t.data_size_out;
        },
        [b](Napi::Env env) {
          Napi::Object r = Napi::Object::New(env);
          r.Set("retval", b->retval);
          r.Set("durationNs", b->duration);
          if (b->wantOut)
            r.Set("data", Napi::Buffer<uint8_t>::Copy(env, b->out.data(), std::min<size_t>(b->outSize, b->out.size())));
          if (!b->ctxOut.empty()) r.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, b->ctxOut.data(), b->ctxOut.size()));
          return r;
        },
        {info.This()});
  }
};

// xdpQuery(ifnameOrIndex, netns) -> { mode, progId, ifindex }
// Resolves info[0] (name or index) inside the namespace info[1]; the guard keeps the
// calling thread there until it goes out of scope.
int IfindexIn(const Napi::CallbackInfo& info, NetnsGuard* ns) {
  Napi::Env env = info.Env();
  std::string netns = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  Failure f;
  if (!ns->Enter(netns, &f)) f.Throw(env);
  int ifindex = ResolveIfindex(info[0], &f, netns);
  if (!ifindex) f.Throw(env);
  return ifindex;
}

Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NetnsGuard ns;
  int ifindex = IfindexIn(info, &ns);
  Failure f;
  XdpState st;
  if (!QueryXdp(ifindex, &st, &f)) f.Throw(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", XdpModeName(st.mode));
  o.Set("progId", st.progId);
  o.Set("ifindex", ifindex);
  return o;
}

// ifindex(name, netns) -> number
Napi::Value IfIndex(const Napi::CallbackInfo& info) {
  NetnsGuard ns;
  return Napi::Number::New(info.Env(), IfindexIn(info, &ns));
}

void Init(Napi::Env env, Napi::Object exports) {
  NativeProgram::Init(env, exports);
  exports.Set("xdpQuery", Napi::Function::New(env, XdpQuery));
  exports.Set("ifIndex", Napi::Function::New(env, IfIndex));
}
BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
