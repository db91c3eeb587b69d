// NativeMap: one BPF map file descriptor (owned). Single-element operations are
// synchronous (one syscall, no thread hop); batch operations run on the libuv pool.
// Array maps created with BPF_F_MMAPABLE can also be mapped into the process (mmap()).
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "btf.h"
#include "fd_wrap.h"
#include "registry.h"
#include "util.h"

namespace bpfkit {

namespace {

void* Bytes(const Napi::Value& v) { return v.As<Napi::Uint8Array>().Data(); }

class NativeMap : public FdWrap<NativeMap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(
        env, "NativeMap",
        {InstanceMethod<&NativeMap::Lookup>("lookup"), InstanceMethod<&NativeMap::Update>("update"),
         InstanceMethod<&NativeMap::Delete>("delete"), InstanceMethod<&NativeMap::Scratch>("scratch"),
         InstanceMethod<&NativeMap::LookupAndDelete>("lookupAndDelete"), InstanceMethod<&NativeMap::NextKey>("nextKey"),
         InstanceMethod<&NativeMap::LookupBatch>("lookupBatch"), InstanceMethod<&NativeMap::UpdateBatch>("updateBatch"),
         InstanceMethod<&NativeMap::DeleteBatch>("deleteBatch"), InstanceMethod<&NativeMap::Freeze>("freeze"),
         InstanceMethod<&NativeMap::Info>("info"), InstanceMethod<&NativeMap::BtfTypes>("btfTypes"),
         InstanceMethod<&NativeMap::Mmap>("mmap"), FdWrap::FdAccessor(), FdWrap::PinMethod(),
         InstanceMethod<&NativeMap::CloseMap>("close")});
    GetData(env)->ctors["NativeMap"] = Napi::Persistent(ctor);
    exports.Set("NativeMap", ctor);
  }
  explicit NativeMap(const Napi::CallbackInfo& info) : FdWrap(info, "map") {}

 private:
  // lookup(key, valueOut) -> boolean (false when the key is absent)
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    return DoLookup(info.Env(), LiveFd(info.Env()), Bytes(info[0]), Bytes(info[1]));
  }
  // update(key, value, flags)
  Napi::Value Update(const Napi::CallbackInfo& info) {
    return DoUpdate(info.Env(), LiveFd(info.Env()), Bytes(info[0]), Bytes(info[1]), info[2]);
  }
  // delete(key) -> boolean (false when absent)
  Napi::Value Delete(const Napi::CallbackInfo& info) {
    return DoDelete(info.Env(), LiveFd(info.Env()), Bytes(info[0]));
  }

  // scratch(keyBytes, valueBytes) -> { bytes, lookup, update, delete }: this handle's own
  // key slot (at 0) and value slot (at max(keyBytes, 1) rounded up to 8) in `bytes`, and
  // three functions that work on them: lookup() -> boolean, update(flags), delete() ->
  // boolean. The same object on every call. This is the single-entry hot path (see Slot).
  Napi::Value Scratch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LiveFd(env);
    if (slotObj_.IsEmpty()) {
      size_t ks = info[0].As<Napi::Number>().Uint32Value(), vs = info[1].As<Napi::Number>().Uint32Value();
      slot_ = Slot::New(fd_, ks, vs);
      Napi::Object o = Napi::Object::New(env);
      o.Set("bytes", slot_->Bytes(env));
      o.Set("lookup", slot_->Function(env, "lookup", &Slot::Lookup));
      o.Set("update", slot_->Function(env, "update", &Slot::Update));
      o.Set("delete", slot_->Function(env, "delete", &Slot::Delete));
      slotObj_ = Napi::Persistent(o);
    }
    return slotObj_.Value();
  }

  // close(): also cuts the scratch functions off the fd (they may outlive this wrapper).
  Napi::Value CloseMap(const Napi::CallbackInfo& info) {
    if (slot_) slot_->fd = -1;
    CloseFd();
    return info.Env().Undefined();
  }

 public:
  ~NativeMap() override {
    if (slot_) {
      slot_->fd = -1;
      slot_->Unref();
    }
  }

 private:
  // The single-entry hot path. Measured on a PVM guest with page-table isolation, a
  // bpf() call made from JS cost ~0.9 us more than the same call from C, and an empty
  // N-API call only ~0.1 us of that: every syscall flushes the TLB, so each distinct page
  // the user side touches per call (code and data) is refilled afterwards, ~4 ns a page.
  // So the path touches as little as it can: plain N-API functions whose data is this
  // slot (no ObjectWrap unwrap, which is a property lookup through the V8 runtime; no
  // argument objects), and bpf(2) issued here with a 32-byte attr instead of through
  // libbpf's wrappers. The slot is reference counted (the wrapper, the three functions
  // and the Buffer each hold one reference; finalizers run on the JS thread), so a
  // function kept after the wrapper is collected finds fd -1, never freed memory.
  struct Slot {
    int fd;
    int refs;
    uint32_t koff;
    size_t len;
    uint8_t* mem;

    static Slot* New(int fd, size_t ks, size_t vs) {
      size_t koff = ((ks ? ks : 1) + 7) & ~size_t(7);  // a 0-byte key still gets its own slot
      size_t len = koff + (vs ? vs : 1);
      auto* s = new Slot{fd, 1, static_cast<uint32_t>(koff), len, static_cast<uint8_t*>(calloc(1, len))};
      if (!s->mem) {
        delete s;
        throw std::bad_alloc();
      }
      return s;
    }
    void Unref() {
      if (--refs == 0) {
        free(mem);
        delete this;
      }
    }
    static void Finalize(napi_env, void*, void* hint) { static_cast<Slot*>(hint)->Unref(); }

    Napi::Buffer<uint8_t> Bytes(Napi::Env env) {
      Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::New(env, mem, len, [this](Napi::Env, uint8_t*) { Unref(); });
      refs++;
      return b;
    }
    Napi::Value Function(Napi::Env env, const char* name, napi_callback cb) {
      napi_value fn;
      NAPI_THROW_IF_FAILED(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, this, &fn), Napi::Value());
      NAPI_THROW_IF_FAILED(env, napi_add_finalizer(env, fn, this, &Slot::Finalize, this, nullptr), Napi::Value());
      refs++;
      return Napi::Value(env, fn);
    }

    long Bpf(int cmd, uint64_t flags) {
      // the first fields of union bpf_attr for BPF_MAP_*_ELEM: map_fd, key, value, flags
      // (delete's last field is key: the rest must be zero)
      struct {
        uint32_t map_fd;
        uint32_t pad;
        uint64_t key;
        uint64_t value;
        uint64_t flags;
      } attr = {static_cast<uint32_t>(fd), 0, reinterpret_cast<uintptr_t>(mem),
                cmd == BPF_MAP_DELETE_ELEM ? 0 : reinterpret_cast<uintptr_t>(mem + koff), flags};
      static_assert(sizeof attr == 32, "bpf_attr prefix for map element commands");
      return syscall(__NR_bpf, cmd, &attr, sizeof attr);
    }

    // One entry point per op: the slot comes from the function's data, the only
    // argument (update's flags) from argv. C++ exceptions become JS exceptions here.
    template <typename F>
    static napi_value Call(napi_env env, napi_callback_info cbi, F&& op) {
      size_t argc = 1;
      napi_value argv[1];
      void* data = nullptr;
      if (napi_get_cb_info(env, cbi, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
      Slot* s = static_cast<Slot*>(data);
      try {
        if (s->fd < 0) ThrowErrno(Napi::Env(env), EBADF, "", "map is closed", "ERR_CLOSED");
        return op(Napi::Env(env), s, argc ? argv[0] : nullptr);
      } catch (const Napi::Error& e) {
        napi_throw(env, e.Value());
        return nullptr;
      }
    }
    static napi_value Bool(napi_env env, bool b) {
      napi_value v;
      napi_get_boolean(env, b, &v);
      return v;
    }
    static napi_value Lookup(napi_env env, napi_callback_info cbi) {
      return Call(env, cbi, [](Napi::Env e, Slot* s, napi_value) -> napi_value {
        if (s->Bpf(BPF_MAP_LOOKUP_ELEM, 0) == 0) return Bool(e, true);
        return Bool(e, LookupFailed(e, errno));
      });
    }
    static napi_value Update(napi_env env, napi_callback_info cbi) {
      return Call(env, cbi, [](Napi::Env e, Slot* s, napi_value flagsV) -> napi_value {
        int64_t flags = BPF_ANY;
        if (flagsV) napi_get_value_int64(e, flagsV, &flags);
        if (s->Bpf(BPF_MAP_UPDATE_ELEM, static_cast<uint64_t>(flags)) != 0) UpdateFailed(e, errno);
        return nullptr;
      });
    }
    static napi_value Delete(napi_env env, napi_callback_info cbi) {
      return Call(env, cbi, [](Napi::Env e, Slot* s, napi_value) -> napi_value {
        if (s->Bpf(BPF_MAP_DELETE_ELEM, 0) == 0) return Bool(e, true);
        return Bool(e, DeleteFailed(e, errno));
      });
    }
  };

  Slot* slot_ = nullptr;
  Napi::ObjectReference slotObj_;

  // The outcome of a failed lookup / update / delete, shared by both paths: false for an
  // absent key (lookup, delete), else a thrown BpfkitError.
  static bool LookupFailed(Napi::Env env, int e) {
    if (e == ENOENT) return false;
    ThrowErrno(env, e, "bpf(BPF_MAP_LOOKUP_ELEM)", "map lookup failed");
  }
  [[noreturn]] static void UpdateFailed(Napi::Env env, int e) {
    if (e == EEXIST) ThrowErrno(env, e, "bpf(BPF_MAP_UPDATE_ELEM)", "key already exists (flag noexist)", "ERR_EXISTS");
    if (e == ENOENT) ThrowErrno(env, e, "bpf(BPF_MAP_UPDATE_ELEM)", "key does not exist (flag exist)", "ERR_NOT_FOUND");
    if (e == E2BIG) ThrowErrno(env, e, "bpf(BPF_MAP_UPDATE_ELEM)", "map is full or key out of range", "ERR_MAP_FULL");
    ThrowErrno(env, e, "bpf(BPF_MAP_UPDATE_ELEM)", "map update failed");
  }
  static bool DeleteFailed(Napi::Env env, int e) {
    if (e == ENOENT) return false;
    ThrowErrno(env, e, "bpf(BPF_MAP_DELETE_ELEM)", "map delete failed");
  }

  static Napi::Value DoLookup(Napi::Env env, int fd, void* key, void* value) {
    if (bpf_map_lookup_elem(fd, key, value) == 0) return Napi::Boolean::New(env, true);
    return Napi::Boolean::New(env, LookupFailed(env, errno));
  }
  static Napi::Value DoUpdate(Napi::Env env, int fd, void* key, void* value, const Napi::Value& flagsV) {
    uint64_t flags = flagsV.IsNumber() ? flagsV.As<Napi::Number>().Int64Value() : static_cast<uint64_t>(BPF_ANY);
    if (bpf_map_update_elem(fd, key, value, flags) != 0) UpdateFailed(env, errno);
    return env.Undefined();
  }
  static Napi::Value DoDelete(Napi::Env env, int fd, void* key) {
    if (bpf_map_delete_elem(fd, key) == 0) return Napi::Boolean::New(env, true);
    return Napi::Boolean::New(env, DeleteFailed(env, errno));
  }

  // lookupAndDelete(key|null, valueOut) -> boolean
  Napi::Value LookupAndDelete(const Napi::CallbackInfo& info) {
    int fd = LiveFd(info.Env());
    void* key = info[0].IsNull() || info[0].IsUndefined() ? nullptr : Bytes(info[0]);
    if (bpf_map_lookup_and_delete_elem(fd, key, Bytes(info[1])) == 0) return Napi::Boolean::New(info.Env(), true);
    int e = errno;
    if (e == ENOENT) return Napi::Boolean::New(info.Env(), false);
    ThrowErrno(info.Env(), e, "bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM)", "map lookup-and-delete failed");
  }
  // nextKey(key|null, keyOut) -> boolean (false at the end)
  Napi::Value NextKey(const Napi::CallbackInfo& info) {
    int fd = LiveFd(info.Env());
    void* key = info[0].IsNull() || info[0].IsUndefined() ? nullptr : Bytes(info[0]);
    if (bpf_map_get_next_key(fd, key, Bytes(info[1])) == 0) return Napi::Boolean::New(info.Env(), true);
    int e = errno;
    if (e == ENOENT) return Napi::Boolean::New(info.Env(), false);
    ThrowErrno(info.Env(), e, "bpf(BPF_MAP_GET_NEXT_KEY)", "map key iteration failed");
  }

  // lookupBatch(keysOut, valuesOut, maxCount, chunk) -> Promise<count>: dumps the
  // whole map (up to maxCount entries) with BPF_MAP_LOOKUP_BATCH.
  Napi::Value LookupBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env);
    Napi::Uint8Array keys = info[0].As<Napi::Uint8Array>(), vals = info[1].As<Napi::Uint8Array>();
    uint32_t maxCount = info[2].As<Napi::Number>().Uint32Value();
    uint32_t chunk = info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 4096;
    uint32_t ksz = KeySize(), vsz = static_cast<uint32_t>(vals.ByteLength() / (maxCount ? maxCount : 1));
    uint8_t* kp = keys.Data();
    uint8_t* vp = vals.Data();
    auto count = std::make_shared<uint32_t>(0);
    return RunAsync(
        env, "bpfkit.lookupBatch",
        [=](Failure& f) {
          uint64_t inBatch = 0, outBatch = 0;
          bool first = true;
          uint32_t total = 0;
          while (total < maxCount) {
            uint32_t n = std::min(chunk, maxCount - total);
            LIBBPF_OPTS(bpf_map_batch_opts, opts);
            int r = bpf_map_lookup_batch(fd, first ? nullptr : &inBatch, &outBatch, kp + size_t(total) * ksz,
                                         vp + size_t(total) * vsz, &n, &opts);
            int e = r < 0 ? errno : 0;
            // a map type without batch ops fails before the kernel writes n back: it
            // still holds what was asked for, not what was read
            bool unsupported = e == EINVAL || e == ENOTSUP || e == 524 /* ENOTSUPP */;
            if (!unsupported) total += n;
            if (e == ENOENT) break;  // end of map; n holds the last partial chunk
            if (r < 0) {
              f.Set(e, "bpf(BPF_MAP_LOOKUP_BATCH)", "batch lookup failed after " + std::to_string(total) + " entries",
                    unsupported ? "ERR_UNSUPPORTED" : "");
              f.details.push_back({"count", total});
              return;
            }
            inBatch = outBatch;
            first = false;
          }
          *count = total;
        },
        [count](Napi::Env env) { return Napi::Number::New(env, *count); }, {keys, vals, info.This()});
  }

  Napi::Value BatchWrite(const Napi::CallbackInfo& info, bool del) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env);
    Napi::Uint8Array keys = info[0].As<Napi::Uint8Array>();
    Napi::Value valsV = info[1];
    uint32_t count = info[2].As<Napi::Number>().Uint32Value();
    uint64_t flags = info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 0;
    uint8_t* kp = keys.Data();
    uint8_t* vp = del ? nullptr : valsV.As<Napi::Uint8Array>().Data();
    auto done = std::make_shared<uint32_t>(0);
    std::vector<Napi::Value> keep{keys, info.This()};
    if (!del) keep.push_back(valsV);
    const char* sc = del ? "bpf(BPF_MAP_DELETE_BATCH)" : "bpf(BPF_MAP_UPDATE_BATCH)";
    return RunAsync(
        env, del ? "bpfkit.deleteBatch" : "bpfkit.updateBatch",
        [=](Failure& f) {
          LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
          uint32_t n = count;
          int r = del ? bpf_map_delete_batch(fd, kp, &n, &opts) : bpf_map_update_batch(fd, kp, vp, &n, &opts);
          int e = r < 0 ? errno : 0;
          // a map type without this batch op fails before the kernel writes n back
          bool unsupported = e == ENOTSUP || e == 524 /* ENOTSUPP */;
          if (unsupported) n = 0;
          *done = n;
          if (r < 0) {
            std::string code = e == E2BIG || e == ENOSPC ? "ERR_MAP_FULL"
                               : e == ENOENT             ? "ERR_NOT_FOUND"
                               : e == EEXIST             ? "ERR_EXISTS"
                               : unsupported             ? "ERR_UNSUPPORTED"
                                                         : "";
            f.Set(e, sc,
                  std::string(del ? "batch delete" : "batch update") + " stopped after " + std::to_string(n) + " of " +
                      std::to_string(count) + " entries",
                  code);
            f.details.push_back({"count", n});
          }
        },
        [done](Napi::Env env) { return Napi::Number::New(env, *done); }, keep);
  }
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info) { return BatchWrite(info, false); }
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info) { return BatchWrite(info, true); }

  Napi::Value Freeze(const Napi::CallbackInfo& info) {
    if (bpf_map_freeze(LiveFd(info.Env())) < 0)
      ThrowErrno(info.Env(), errno, "bpf(BPF_MAP_FREEZE)", "map freeze failed");
    return info.Env().Undefined();
  }

  // mmap() -> Buffer over every value of a BPF_F_MMAPABLE array map, shared with the
  // kernel (PROT_READ|PROT_WRITE, MAP_SHARED). The kernel lays the values out from
  // offset 0 of the mapping, element i at i * round_up(value_size, 8) (kernel/bpf/
  // arraymap.c: array_map_mmap maps the page-aligned value area, elem_size strides it).
  // Each call makes a new mapping; it is unmapped when the Buffer is garbage collected,
  // and the mapping (its file reference) keeps the kernel map alive until then, even
  // after this fd is closed. A writable mapping also makes BPF_MAP_FREEZE fail (EBUSY).
  Napi::Value Mmap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env);
    struct bpf_map_info mi;
    if (!GetInfo(&mi)) ThrowErrno(env, errno, "bpf(BPF_OBJ_GET_INFO_BY_FD)", "cannot read map info");
    std::string what = std::string("map '") + mi.name + "'";
    if (mi.type != BPF_MAP_TYPE_ARRAY) {
      const char* tn = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(mi.type));
      ThrowErrno(env, 0, "",
                 what + " is a " + (tn ? tn : "unknown") +
                     " map: only array maps created with BPF_F_MMAPABLE can be memory-mapped",
                 "ERR_UNSUPPORTED");
    }
    if (!(mi.map_flags & BPF_F_MMAPABLE))
      ThrowErrno(env, 0, "",
                 what + " was not created with BPF_F_MMAPABLE (map_flags " + std::to_string(mi.map_flags) +
                     "): declare it with __uint(map_flags, BPF_F_MMAPABLE) to memory-map it",
                 "ERR_UNSUPPORTED");
    uint64_t stride = (static_cast<uint64_t>(mi.value_size) + 7) & ~7ULL;
    uint64_t bytes = stride * mi.max_entries;
    uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    size_t maplen = static_cast<size_t>((bytes + page - 1) / page * page);
    void* p = mmap(nullptr, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      if (e == EPERM) ThrowErrno(env, e, "mmap", what + " cannot be mapped writable: it is frozen (BPF_MAP_FREEZE)");
      if (e == EACCES)
        ThrowErrno(env, e, "mmap",
                   what +
                       " cannot be mapped writable: it is read-only (BPF_F_RDONLY_PROG, or this fd was opened "
                       "read-only)");
      if (e == 524 /* ENOTSUPP */ || e == EOPNOTSUPP)
        ThrowErrno(env, e, "mmap", what + " cannot be memory-mapped (its values hold kernel-managed fields)",
                   "ERR_UNSUPPORTED");
      ThrowErrno(env, e, "mmap", "cannot memory-map " + what);
    }
    uint8_t* data = static_cast<uint8_t*>(p);
    Napi::Buffer<uint8_t> buf;
    try {
      buf = Napi::Buffer<uint8_t>::New(env, data, static_cast<size_t>(bytes), [maplen](Napi::Env e, uint8_t* d) {
        munmap(d, maplen);
        Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>(maplen));
      });
    } catch (...) {
      munmap(p, maplen);
      throw;
    }
    // the mapping pins kernel memory: let the collector weigh it
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(maplen));
    return buf;
  }

  bool GetInfo(struct bpf_map_info* mi) {
    memset(mi, 0, sizeof *mi);
    uint32_t len = sizeof *mi;
    return bpf_obj_get_info_by_fd(fd_, mi, &len) == 0;
  }
  uint32_t KeySize() {
    struct bpf_map_info mi;
    return GetInfo(&mi) ? mi.key_size : 0;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LiveFd(env);
    struct bpf_map_info mi;
    if (!GetInfo(&mi)) ThrowErrno(env, errno, "bpf(BPF_OBJ_GET_INFO_BY_FD)", "cannot read map info");
    Napi::Object o = Napi::Object::New(env);
    const char* tn = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(mi.type));
    o.Set("id", mi.id);
    o.Set("name", mi.name);
    o.Set("type", tn ? tn : "unknown");
    o.Set("typeId", mi.type);
    o.Set("keySize", mi.key_size);
    o.Set("valueSize", mi.value_size);
    o.Set("maxEntries", mi.max_entries);
    o.Set("flags", mi.map_flags);
    o.Set("btfId", mi.btf_id);
    return o;
  }

  // btfTypes() -> { key, value } descriptions from the kernel's BTF for this map.
  Napi::Value BtfTypes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    LiveFd(env);
    struct bpf_map_info mi;
    Napi::Object o = Napi::Object::New(env);
    o.Set("key", env.Null());
    o.Set("value", env.Null());
    if (!GetInfo(&mi) || mi.btf_id == 0) return o;
    struct btf* b = btf__load_from_kernel_by_id(mi.btf_id);
    if (!b) return o;
    o.Set("key", DescribeBtfType(env, b, mi.btf_key_type_id));
    o.Set("value", DescribeBtfType(env, b, mi.btf_value_type_id));
    btf__free(b);
    return o;
  }
};

void Init(Napi::Env env, Napi::Object exports) {
  NativeMap::Init(env, exports);
  exports.Set("possibleCpus", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                int n = libbpf_num_possible_cpus();
                if (n < 0) ThrowErrno(info.Env(), -n, "read(/sys/devices/system/cpu/possible)", "cannot count CPUs");
                return Napi::Number::New(info.Env(), n);
              }));
}

BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
