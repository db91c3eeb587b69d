// NativeObject: a libbpf bpf_object from an ELF file or buffer. Configure before
// load (map sizes and pin paths, globals, autoload); load() runs off the JS thread
// and turns a verifier rejection into ERR_VERIFIER carrying the full log.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"
#include "registry.h"
#include "util.h"

namespace bpfkit {

namespace {

class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor =
        DefineClass(env, "NativeObject",
                    {InstanceMethod<&NativeObject::Programs>("programs"), InstanceMethod<&NativeObject::Maps>("maps"),
                     InstanceMethod<&NativeObject::Globals>("globals"),
                     InstanceMethod<&NativeObject::SetMapMaxEntries>("setMapMaxEntries"),
                     InstanceMethod<&NativeObject::SetMapPinPath>("setMapPinPath"),
                     InstanceMethod<&NativeObject::ReuseMapFd>("reuseMapFd"),
                     InstanceMethod<&NativeObject::SetAutoload>("setAutoload"),
                     InstanceMethod<&NativeObject::SetGlobal>("setGlobal"), InstanceMethod<&NativeObject::Load>("load"),
                     InstanceMethod<&NativeObject::Program>("program"), InstanceMethod<&NativeObject::Map>("map"),
                     InstanceMethod<&NativeObject::Close>("close")});
    exports.Set("NativeObject", ctor);
  }

  // new NativeObject(pathOrBuffer, { name, pinRoot })
  explicit NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
    Napi::Env env = info.Env();
    std::string name = info[1].IsObject() ? OptString(info[1].As<Napi::Object>(), "name") : "";
    // where maps declared LIBBPF_PIN_BY_NAME are pinned (libbpf's default: /sys/fs/bpf)
    std::string pin_root = info[1].IsObject() ? OptString(info[1].As<Napi::Object>(), "pinRoot") : "";
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name.empty() ? nullptr : name.c_str(),
                .pin_root_path = pin_root.empty() ? nullptr : pin_root.c_str());
    LibbpfCapture cap;
    std::string what;
    if (info[0].IsString()) {
      what = info[0].As<Napi::String>().Utf8Value();
      obj_ = bpf_object__open_file(what.c_str(), &opts);
    } else {
      Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
      elf_.assign(buf.Data(), buf.Data() + buf.ByteLength());  // libbpf keeps pointing at it
      what = "buffer";
      obj_ = bpf_object__open_mem(elf_.data(), elf_.size(), &opts);
    }
    long err = libbpf_get_error(obj_);
    if (err) {
      obj_ = nullptr;
      int e = static_cast<int>(-err);
      std::string detail = cap.LastLine();
      std::string msg = "cannot open BPF object '" + what + "'" + (detail.empty() ? "" : ": " + detail);
      if (e == ENOENT) ThrowErrno(env, e, "open", msg, "ERR_NOT_FOUND");
      if (e == EACCES || e == EPERM) ThrowErrno(env, e, "open", msg);
      ThrowErrno(env, e, "bpf_object__open", msg, "ERR_INVALID_OBJECT");
    }
  }
  ~NativeObject() override { Destroy(); }

 private:
  void Destroy() {
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
  }
  struct bpf_object* Live(Napi::Env env) {
    if (!obj_) ThrowErrno(env, EBADF, "", "BPF object is closed", "ERR_CLOSED");
    if (busy_) ThrowErrno(env, EBUSY, "", "BPF object is loading", "ERR_BUSY");
    return obj_;
  }
  struct bpf_object* Unloaded(Napi::Env env, const char* what) {
    struct bpf_object* o = Live(env);
    if (loaded_) ThrowErrno(env, EINVAL, "", std::string(what) + " must be set before load()", "ERR_INVALID_ARGUMENT");
    return o;
  }
  struct bpf_map* FindMap(Napi::Env env, const Napi::Value& v) {
    std::string name = v.As<Napi::String>().Utf8Value();
    struct bpf_map* m = bpf_object__find_map_by_name(Live(env), name.c_str());
    if (!m) ThrowErrno(env, ENOENT, "", "no map named '" + name + "' in this object", "ERR_NOT_FOUND");
    return m;
  }
  struct bpf_program* FindProgram(Napi::Env env, const Napi::Value& v) {
    std::string name = v.As<Napi::String>().Utf8Value();
    struct bpf_program* p = bpf_object__find_program_by_name(Live(env), name.c_str());
    if (!p) ThrowErrno(env, ENOENT, "", "no program named '" + name + "' in this object", "ERR_NOT_FOUND");
    return p;
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array arr = Napi::Array::New(env);
    struct bpf_program* p;
    uint32_t i = 0;
    bpf_object__for_each_program(p, Live(env)) {
      Napi::Object o = Napi::Object::New(env);
      const char* tn = libbpf_bpf_prog_type_str(bpf_program__type(p));
      o.Set("name", bpf_program__name(p));
      o.Set("section", bpf_program__section_name(p));
      o.Set("type", tn ? tn : "unknown");
      o.Set("autoload", bpf_program__autoload(p));
      o.Set("loaded", loaded_ && bpf_program__fd(p) >= 0);
      arr.Set(i++, o);
    }
    return arr;
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array arr = Napi::Array::New(env);
    struct bpf_map* m;
    uint32_t i = 0;
    bpf_object__for_each_map(m, Live(env)) {
      Napi::Object o = Napi::Object::New(env);
      const char* tn = libbpf_bpf_map_type_str(bpf_map__type(m));
      o.Set("name", bpf_map__name(m));
      o.Set("type", tn ? tn : "unknown");
      o.Set("keySize", bpf_map__key_size(m));
      o.Set("valueSize", bpf_map__value_size(m));
      o.Set("maxEntries", bpf_map__max_entries(m));
      o.Set("internal", bpf_map__is_internal(m));
      const char* pin = bpf_map__pin_path(m);
      if (pin) o.Set("pinPath", pin);
      o.Set("pinned", bpf_map__is_pinned(m));
      arr.Set(i++, o);
    }
    return arr;
  }

  // Global variables: every VAR in every DATASEC, with the internal map holding it.
  struct GlobalVar {
    std::string name, section;
    struct bpf_map* map;
    uint32_t offset, size;
  };
  std::vector<GlobalVar> ListGlobals(Napi::Env env) {
    std::vector<GlobalVar> out;
    struct bpf_object* o = Live(env);
    const struct btf* b = bpf_object__btf(o);
    if (!b) return out;
    uint32_t n = btf__type_cnt(b);
    for (uint32_t id = 1; id < n; id++) {
      const struct btf_type* t = btf__type_by_id(b, id);
      if (!btf_is_datasec(t)) continue;
      std::string sec = btf__name_by_offset(b, t->name_off);
      if (sec == ".kconfig" || sec == ".ksyms") continue;
      struct bpf_map* holder = nullptr;
      struct bpf_map* m;
      bpf_object__for_each_map(m, o) {
        if (!bpf_map__is_internal(m)) continue;
        std::string mn = bpf_map__name(m);
        // internal maps are named "<obj prefix><section>" (e.g. "counter.rodata")
        if (mn.size() >= sec.size() && mn.compare(mn.size() - sec.size(), sec.size(), sec) == 0) holder = m;
      }
      if (!holder) continue;  // .maps, license: not variables a user can set
      const struct btf_var_secinfo* vs = btf_var_secinfos(t);
      for (unsigned i = 0; i < btf_vlen(t); i++) {
        const struct btf_type* v = btf__type_by_id(b, vs[i].type);
        if (!btf_is_var(v)) continue;
        out.push_back({btf__name_by_offset(b, v->name_off), sec, holder, vs[i].offset, vs[i].size});
      }
    }
    return out;
  }

  Napi::Value Globals(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array arr = Napi::Array::New(env);
    uint32_t i = 0;
    for (auto& g : ListGlobals(env)) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", g.name);
      o.Set("section", g.section);
      o.Set("offset", g.offset);
      o.Set("size", g.size);
      o.Set("readOnly", g.section.rfind(".rodata", 0) == 0);
      arr.Set(i++, o);
    }
    return arr;
  }

  // setGlobal(name, bytes): writes the initial value of a global variable.
  Napi::Value SetGlobal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Unloaded(env, "global variables");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    Napi::Uint8Array val = info[1].As<Napi::Uint8Array>();
    for (auto& g : ListGlobals(env)) {
      if (g.name != name) continue;
      if (val.ByteLength() != g.size)
        ThrowInvalid(
            env, "globals." + name,
            "variable is " + std::to_string(g.size) + " bytes, value given is " + std::to_string(val.ByteLength()));
      size_t sz = 0;
      void* data = g.map ? const_cast<void*>(bpf_map__initial_value(g.map, &sz)) : nullptr;
      if (!data || g.offset + g.size > sz)
        ThrowErrno(env, ENOENT, "", "global '" + name + "' has no writable initial value", "ERR_UNSUPPORTED");
      memcpy(static_cast<uint8_t*>(data) + g.offset, val.Data(), g.size);
      return env.Undefined();
    }
    ThrowErrno(env, ENOENT, "", "no global variable named '" + name + "' in this object", "ERR_NOT_FOUND");
  }

  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Unloaded(env, "map sizes");
    struct bpf_map* m = FindMap(env, info[0]);
    int r = bpf_map__set_max_entries(m, info[1].As<Napi::Number>().Uint32Value());
    if (r < 0) ThrowErrno(env, -r, "bpf_map__set_max_entries", "cannot resize map", "ERR_INVALID_ARGUMENT");
    return env.Undefined();
  }
  Napi::Value SetMapPinPath(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Unloaded(env, "map pin paths");
    struct bpf_map* m = FindMap(env, info[0]);
    std::string path = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    int r = bpf_map__set_pin_path(m, path.empty() ? nullptr : path.c_str());
    if (r < 0) ThrowErrno(env, -r, "bpf_map__set_pin_path", "cannot set pin path", "ERR_INVALID_ARGUMENT");
    return env.Undefined();
  }
  // reuseMapFd(name, fd): the map is not created at load; the program uses the map
  // behind fd instead (libbpf dups it, so the caller keeps its own fd).
  Napi::Value ReuseMapFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Unloaded(env, "map reuse");
    struct bpf_map* m = FindMap(env, info[0]);
    int fd = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
    int r = bpf_map__reuse_fd(m, fd);
    if (r < 0) ThrowErrno(env, -r, "bpf_map__reuse_fd", "cannot reuse the map", "ERR_INVALID_ARGUMENT");
    return env.Undefined();
  }
  Napi::Value SetAutoload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Unloaded(env, "autoload");
    struct bpf_program* p = FindProgram(env, info[0]);
    bpf_program__set_autoload(p, info[1].ToBoolean().Value());
    return env.Undefined();
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_object* o = Unloaded(env, "load()");
    busy_ = true;
    return RunAsync(
        env, "bpfkit.load",
        [o](Failure& f) {
          LibbpfCapture cap;
          int r = bpf_object__load(o);
          if (r == 0) return;
          int e = -r;
          std::string prog;
          std::string log = cap.VerifierLog(&prog);
          if (e >= 4000) e = EINVAL;  // libbpf's private error range; the detail is in the message
          if (!log.empty() && e != EPERM) {
            f.Set(e, "bpf(BPF_PROG_LOAD)", "the verifier rejected program '" + prog + "'", "ERR_VERIFIER");
            f.log = log;
            f.program = prog;
          } else {
            std::string last = cap.LastLine();
            f.Set(e, "bpf_object__load", "cannot load BPF object" + (last.empty() ? "" : ": " + last));
          }
        },
        [this](Napi::Env env) {
          busy_ = false;
          loaded_ = true;
          if (closePending_) Destroy();
          return env.Undefined();
        },
        {info.This()});
  }

  Napi::Value Program(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_program* p = FindProgram(env, info[0]);
    int fd = bpf_program__fd(p);
    if (fd < 0)
      ThrowErrno(env, ENOENT, "", std::string("program '") + bpf_program__name(p) + "' is not loaded", "ERR_NOT_FOUND");
    int dup = DupFd(fd);
    if (dup < 0) ThrowErrno(env, -dup, "fcntl(F_DUPFD_CLOEXEC)", "cannot duplicate program fd");
    return NewWrapped(env, "NativeProgram", dup);
  }
  Napi::Value Map(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_map* m = FindMap(env, info[0]);
    int fd = bpf_map__fd(m);
    if (fd < 0)
      ThrowErrno(env, ENOENT, "", "map '" + std::string(bpf_map__name(m)) + "' is not created (load first)",
                 "ERR_NOT_FOUND");
    int dup = DupFd(fd);
    if (dup < 0) ThrowErrno(env, -dup, "fcntl(F_DUPFD_CLOEXEC)", "cannot duplicate map fd");
    return NewWrapped(env, "NativeMap", dup);
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (busy_)
      closePending_ = true;
    else
      Destroy();
    return info.Env().Undefined();
  }

  struct bpf_object* obj_ = nullptr;
  std::vector<uint8_t> elf_;
  bool loaded_ = false, busy_ = false, closePending_ = false;
};

// openPinned(path) -> { kind: 'map'|'program'|'link', handle }
Napi::Value OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    int e = errno;
    ThrowErrno(env, e, "bpf(BPF_OBJ_GET)", "cannot open pinned object '" + path + "'");
  }
  std::string fdinfo = "/proc/self/fdinfo/" + std::to_string(fd);
  FILE* fp = fopen(fdinfo.c_str(), "r");
  std::string kind;
  if (fp) {
    char line[256];
    while (fgets(line, sizeof line, fp)) {
      if (!strncmp(line, "map_type:", 9))
        kind = "map";
      else if (!strncmp(line, "prog_type:", 10))
        kind = "program";
      else if (!strncmp(line, "link_type:", 10))
        kind = "link";
      if (!kind.empty()) break;
    }
    fclose(fp);
  }
  const char* cls = kind == "map"       ? "NativeMap"
                    : kind == "program" ? "NativeProgram"
                    : kind == "link"    ? "NativeLink"
                                        : nullptr;
  if (!cls) {
    close(fd);
    ThrowErrno(env, EINVAL, "bpf(BPF_OBJ_GET)", "pinned object '" + path + "' is of an unknown kind",
               "ERR_UNSUPPORTED");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", kind);
  o.Set("handle", NewWrapped(env, cls, fd));
  return o;
}

void Init(Napi::Env env, Napi::Object exports) {
  NativeObject::Init(env, exports);
  exports.Set("openPinned", Napi::Function::New(env, OpenPinned));
  exports.Set("libbpfVersion", Napi::String::New(env, libbpf_version_string()));
}
BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
