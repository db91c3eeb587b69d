// NativeRingBuffer: the consumer side of one BPF_MAP_TYPE_RINGBUF map, read on the
// JS thread without helper threads.
//
// - The ring is mapped into this process the way libbpf does it (consumer page
//   read-write, producer page + data pages read-only, data mapped twice so a record
//   that wraps around is contiguous), and read by consume() in bounded batches into a
//   JS-owned buffer. No ring pointer ever survives a call into JS, so JS may close the
//   ring at any moment (inside a callback, while the kernel keeps producing).
// - Readiness comes from the map fd itself (a ringbuf fd is pollable: readable while
//   the ring holds data) watched by a libuv poll handle on the Node loop. libuv polls
//   level-triggered, so a batch left in the ring re-fires the handle on the next loop
//   iteration: one burst cannot starve the loop, and nothing is missed.
// - On readiness the addon calls `dispatch(owner, status)` (a module-level JS function)
//   with the JS RingBuffer, which drains with consume(). The owner is held weakly while
//   stopped (a paused, dropped ring can be collected) and strongly while polling (like a
//   socket, a flowing ring stays alive until closed).
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "errors.h"
#include "registry.h"
#include "util.h"

namespace bpfkit {

namespace {

class NativeRingBuffer;

// The ring's two mappings (consumer page rw; producer page + data twice, ro). Owned by a
// count: the NativeRingBuffer holds one reference and each external ArrayBuffer handed
// to JS (mapping()) one, released by its finalizer. close() detaches the ArrayBuffers
// (JS then reads nothing through them) and unmaps at once; without close() (the wrapper
// collected, env teardown) the memory stays mapped until the last ArrayBuffer is
// collected, so JS can never reach unmapped memory.
struct Mapping {
  uint8_t* cons = nullptr;
  uint8_t* prod = nullptr;
  size_t page = 0, prodLen = 0;
  int refs = 1;
  void Unmap() {
    if (prod) munmap(prod, prodLen);
    if (cons) munmap(cons, page);
    prod = cons = nullptr;
  }
  void Unref() {
    if (--refs == 0) {
      Unmap();
      delete this;
    }
  }
};

// The libuv handle lives on the heap: libuv frees it asynchronously (uv_close), possibly
// after the wrapper that owned it is gone.
struct PollBox {
  uv_poll_t handle;
  NativeRingBuffer* owner;
};

class NativeRingBuffer : public Napi::ObjectWrap<NativeRingBuffer> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(
        env, "NativeRingBuffer",
        {InstanceMethod<&NativeRingBuffer::Consume>("consume"), InstanceMethod<&NativeRingBuffer::Start>("start"),
         InstanceMethod<&NativeRingBuffer::Stop>("stop"), InstanceMethod<&NativeRingBuffer::SetRef>("ref"),
         InstanceMethod<&NativeRingBuffer::SetUnref>("unref"), InstanceMethod<&NativeRingBuffer::Close>("close"),
         InstanceMethod<&NativeRingBuffer::GetMapping>("mapping"), InstanceAccessor<&NativeRingBuffer::GetSize>("size"),
         InstanceAccessor<&NativeRingBuffer::GetPending>("pending"), InstanceAccessor<&NativeRingBuffer::GetFd>("fd")});
    exports.Set("NativeRingBuffer", ctor);
  }

  // new NativeRingBuffer(mapFd, owner, dispatch): mapFd is duplicated (the caller keeps
  // its own); dispatch(owner, status) is called on the loop thread when readable.
  explicit NativeRingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRingBuffer>(info) {
    Napi::Env env = info.Env();
    env_ = env;
    if (!info[0].IsNumber()) ThrowInvalid(env, "fd", "internal constructor expects a map file descriptor");
    if (!info[1].IsObject()) ThrowInvalid(env, "owner", "internal constructor expects the owning object");
    if (!info[2].IsFunction()) ThrowInvalid(env, "dispatch", "internal constructor expects a dispatch function");
    int src = info[0].As<Napi::Number>().Int32Value();

    struct bpf_map_info mi;
    memset(&mi, 0, sizeof mi);
    uint32_t len = sizeof mi;
    if (bpf_obj_get_info_by_fd(src, &mi, &len) < 0)
      ThrowErrno(env, errno, "bpf(BPF_OBJ_GET_INFO_BY_FD)", "cannot read map info");
    if (mi.type != BPF_MAP_TYPE_RINGBUF)
      ThrowInvalid(env, "map", std::string("map '") + mi.name + "' is not a ring buffer (BPF_MAP_TYPE_RINGBUF)");
    size_ = mi.max_entries;
    mask_ = size_ - 1;

    fd_ = DupFd(src);
    if (fd_ < 0) ThrowErrno(env, -fd_, "fcntl(F_DUPFD_CLOEXEC)", "cannot duplicate ring buffer fd");

    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* c = mmap(nullptr, page_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (c == MAP_FAILED) {
      int e = errno;
      Release();
      ThrowErrno(env, e, "mmap", "cannot map the ring buffer's consumer page");
    }
    map_ = new Mapping{};
    map_->page = page_;
    map_->cons = cons_ = static_cast<uint8_t*>(c);
    // producer page + data, the data twice (the kernel maps it so wrapped records are contiguous)
    prodLen_ = page_ + 2 * static_cast<size_t>(size_);
    void* p = mmap(nullptr, prodLen_, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(page_));
    if (p == MAP_FAILED) {
      int e = errno;
      Release();
      ThrowErrno(env, e, "mmap", "cannot map the ring buffer's data pages");
    }
    map_->prodLen = prodLen_;
    map_->prod = prod_ = static_cast<uint8_t*>(p);
    data_ = prod_ + page_;

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      Release();
      ThrowErrno(env, EINVAL, "napi_get_uv_event_loop", "cannot get the event loop");
    }
    box_ = new PollBox{};
    box_->owner = this;
    int r = uv_poll_init(loop, &box_->handle, fd_);
    if (r < 0) {
      delete box_;
      box_ = nullptr;
      Release();
      ThrowErrno(env, -r, "uv_poll_init", std::string("cannot watch the ring buffer: ") + uv_strerror(r));
    }
    box_->handle.data = box_;

    owner_ = Napi::Weak(info[1].As<Napi::Object>());
    dispatch_ = Napi::Persistent(info[2].As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, "bpfkit.RingBuffer");
    napi_add_env_cleanup_hook(env, &NativeRingBuffer::EnvCleanup, this);
    hooked_ = true;
  }

  ~NativeRingBuffer() override {
    if (hooked_) napi_remove_env_cleanup_hook(env_, &NativeRingBuffer::EnvCleanup, this);
    hooked_ = false;
    for (napi_ref r : {consRef_, prodRef_})
      if (r) napi_delete_reference(env_, r);
    Release();
  }

 private:
  static constexpr uint32_t kBusy = BPF_RINGBUF_BUSY_BIT;
  static constexpr uint32_t kDiscard = BPF_RINGBUF_DISCARD_BIT;
  static constexpr uint32_t kHdr = BPF_RINGBUF_HDR_SZ;

  uint64_t* ConsPos() const { return reinterpret_cast<uint64_t*>(cons_); }
  uint64_t* ProdPos() const { return reinterpret_cast<uint64_t*>(prod_); }

  // Stops polling and releases the handle, the mappings and the fd. Idempotent; never
  // calls into JS (used by close(), the destructor and environment teardown).
  void Release() {
    if (box_) {
      if (polling_) uv_poll_stop(&box_->handle);
      box_->owner = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&box_->handle),
               [](uv_handle_t* h) { delete static_cast<PollBox*>(h->data); });
      box_ = nullptr;
    }
    if (polling_ && !owner_.IsEmpty()) owner_.Unref();
    polling_ = false;
    if (map_) map_->Unref();
    map_ = nullptr;
    prod_ = cons_ = data_ = nullptr;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  static void EnvCleanup(void* arg) {
    auto* self = static_cast<NativeRingBuffer*>(arg);
    self->hooked_ = false;
    self->consRef_ = self->prodRef_ = nullptr;  // the environment frees its references
    self->Release();
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* box = static_cast<PollBox*>(h->data);
    NativeRingBuffer* self = box ? box->owner : nullptr;
    if (!self || !self->polling_) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    Napi::Object owner = self->owner_.Value();
    if (owner.IsEmpty()) return;
    // `self` may be released (closed) during the callback: touch nothing after it.
    try {
      self->dispatch_.MakeCallback(env.Global(), {owner, Napi::Number::New(env, status)}, *self->async_);
    } catch (const Napi::Error& e) {
      // An exception from a listener: report it like Node does for its own handles.
      napi_fatal_exception(env, e.Value());
    }
  }

  void Live(Napi::Env env) const {
    if (!box_) ThrowErrno(env, EBADF, "", "ring buffer is closed", "ERR_CLOSED");
  }

  // consume(buf: Uint8Array, offs: Uint32Array, max) -> n records copied, with record i
  // at buf[offs[2i]] of length offs[2i+1] (8-byte aligned); or -len when the next record
  // (len bytes) does not fit in an empty `buf`. Discarded records are skipped.
  Napi::Value Consume(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Live(env);
    Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
    Napi::Uint32Array offs = info[1].As<Napi::Uint32Array>();
    uint32_t max = info[2].As<Napi::Number>().Uint32Value();
    max = std::min<uint32_t>(max, static_cast<uint32_t>(offs.ElementLength() / 2));
    uint8_t* out = buf.Data();
    size_t cap = buf.ByteLength();
    uint32_t* o = offs.Data();

    uint64_t cons = __atomic_load_n(ConsPos(), __ATOMIC_ACQUIRE);
    uint64_t prod = __atomic_load_n(ProdPos(), __ATOMIC_ACQUIRE);
    uint64_t start = cons;
    size_t used = 0;
    uint32_t n = 0;
    int64_t need = 0;
    while (n < max) {
      if (cons >= prod) {
        // publish progress before looking again, so a producer that commits now sees
        // that we caught up and wakes us (the kernel wakes only a caught-up consumer)
        if (cons != start) __atomic_store_n(ConsPos(), cons, __ATOMIC_RELEASE);
        start = cons;
        prod = __atomic_load_n(ProdPos(), __ATOMIC_ACQUIRE);
        if (cons >= prod) break;
      }
      uint32_t* hdr = reinterpret_cast<uint32_t*>(data_ + (cons & mask_));
      uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
      if (len & kBusy) break;  // reserved, not yet committed: records after it wait too
      uint32_t rlen = len & ~(kBusy | kDiscard);
      uint64_t step = (static_cast<uint64_t>(rlen) + kHdr + 7) & ~7ULL;
      if (!(len & kDiscard)) {
        size_t at = (used + 7) & ~static_cast<size_t>(7);
        if (at + rlen > cap) {
          if (n == 0) need = rlen ? rlen : 1;
          break;
        }
        memcpy(out + at, reinterpret_cast<uint8_t*>(hdr) + kHdr, rlen);
        o[2 * n] = static_cast<uint32_t>(at);
        o[2 * n + 1] = rlen;
        used = at + rlen;
        n++;
      }
      cons += step;
    }
    if (cons != start) __atomic_store_n(ConsPos(), cons, __ATOMIC_RELEASE);
    if (need) return Napi::Number::New(env, -static_cast<double>(need));
    return Napi::Number::New(env, n);
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Live(env);
    if (polling_) return env.Undefined();
    int r = uv_poll_start(&box_->handle, UV_READABLE, &NativeRingBuffer::OnPoll);
    if (r < 0) ThrowErrno(env, -r, "uv_poll_start", std::string("cannot poll the ring buffer: ") + uv_strerror(r));
    polling_ = true;
    owner_.Ref();
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!box_ || !polling_) return env.Undefined();
    uv_poll_stop(&box_->handle);
    polling_ = false;
    owner_.Unref();
    return env.Undefined();
  }

  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    if (box_) uv_ref(reinterpret_cast<uv_handle_t*>(&box_->handle));
    return info.Env().Undefined();
  }
  Napi::Value SetUnref(const Napi::CallbackInfo& info) {
    if (box_) uv_unref(reinterpret_cast<uv_handle_t*>(&box_->handle));
    return info.Env().Undefined();
  }

  // close(): the ArrayBuffers of mapping() are detached first (a view kept in JS then has
  // length 0 and DataView reads throw), then the memory is unmapped at once.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool detached = true;
    for (napi_ref* r : {&consRef_, &prodRef_}) {
      if (!*r) continue;
      napi_value ab = nullptr;
      if (napi_get_reference_value(env, *r, &ab) == napi_ok && ab)
        detached &= napi_detach_arraybuffer(env, ab) == napi_ok;
      napi_delete_reference(env, *r);
      *r = nullptr;
    }
    // unmap now only when no JS object can still reach the memory
    if (map_ && detached) map_->Unmap();
    Release();
    return env.Undefined();
  }

  static void FinalizeMapping(napi_env, void*, void* hint) { static_cast<Mapping*>(hint)->Unref(); }

  Napi::ArrayBuffer External(Napi::Env env, uint8_t* at, size_t len, napi_ref* ref) {
    napi_value ab;
    map_->refs++;
    if (napi_create_external_arraybuffer(env, at, len, &NativeRingBuffer::FinalizeMapping, map_, &ab) != napi_ok) {
      map_->refs--;
      ThrowErrno(env, ENOMEM, "napi_create_external_arraybuffer", "cannot expose the ring buffer's mapping");
    }
    if (*ref) napi_delete_reference(env, *ref);
    napi_create_reference(env, ab, 0, ref);
    return Napi::ArrayBuffer(env, ab);
  }

  // mapping() -> { consumer, producer, dataOffset, size }: the consumer page (read-write:
  // the consumer position is its first 8 bytes) and the producer page + data pages twice
  // (read-only: the producer position is its first 8 bytes; data at dataOffset), as
  // external ArrayBuffers over the ring's own mapping. Made once per ring.
  Napi::Value GetMapping(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Live(env);
    Napi::Object out = Napi::Object::New(env);
    out.Set("consumer", External(env, cons_, page_, &consRef_));
    out.Set("producer", External(env, prod_, prodLen_, &prodRef_));
    out.Set("dataOffset", Napi::Number::New(env, static_cast<double>(page_)));
    out.Set("size", Napi::Number::New(env, size_));
    return out;
  }

  Napi::Value GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), size_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  // Bytes in the ring not yet consumed (record headers included); 0 when closed.
  Napi::Value GetPending(const Napi::CallbackInfo& info) {
    if (!box_) return Napi::Number::New(info.Env(), 0);
    uint64_t cons = __atomic_load_n(ConsPos(), __ATOMIC_ACQUIRE);
    uint64_t prod = __atomic_load_n(ProdPos(), __ATOMIC_ACQUIRE);
    return Napi::Number::New(info.Env(), static_cast<double>(prod - cons));
  }

  napi_env env_ = nullptr;
  int fd_ = -1;
  uint32_t size_ = 0;
  uint64_t mask_ = 0;
  size_t page_ = 0, prodLen_ = 0;
  uint8_t* cons_ = nullptr;
  uint8_t* prod_ = nullptr;
  uint8_t* data_ = nullptr;
  Mapping* map_ = nullptr;
  napi_ref consRef_ = nullptr;
  napi_ref prodRef_ = nullptr;
  PollBox* box_ = nullptr;
  bool polling_ = false;
  bool hooked_ = false;
  Napi::ObjectReference owner_;
  Napi::FunctionReference dispatch_;
  std::unique_ptr<Napi::AsyncContext> async_;
};

void Init(Napi::Env env, Napi::Object exports) { NativeRingBuffer::Init(env, exports); }

BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
