// Opening kernel objects by id (as `bpftool prog show id N` does), for tools that find
// programs through an interface (xdpQuery, tcxQuery) rather than a pin: openById(kind, id)
// and the map ids a program uses, progMapIds(fd).
#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "errors.h"
#include "registry.h"

namespace bpfkit {

namespace {

// openById('map' | 'program' | 'link', id) -> handle (NativeMap / NativeProgram / NativeLink)
Napi::Value OpenById(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  uint32_t id = info[1].As<Napi::Number>().Uint32Value();
  int fd;
  const char* cls;
  const char* syscall;
  if (kind == "map") {
    fd = bpf_map_get_fd_by_id(id);
    cls = "NativeMap";
    syscall = "bpf(BPF_MAP_GET_FD_BY_ID)";
  } else if (kind == "program") {
    fd = bpf_prog_get_fd_by_id(id);
    cls = "NativeProgram";
    syscall = "bpf(BPF_PROG_GET_FD_BY_ID)";
  } else if (kind == "link") {
    fd = bpf_link_get_fd_by_id(id);
    cls = "NativeLink";
    syscall = "bpf(BPF_LINK_GET_FD_BY_ID)";
  } else {
    ThrowInvalid(env, "kind", "must be 'map', 'program' or 'link', got '" + kind + "'");
  }
  if (fd < 0) {
    int e = errno;
    ThrowErrno(env, e, syscall, "cannot open " + kind + " id " + std::to_string(id));
  }
  return NewWrapped(env, cls, fd);
}

// progMapIds(fd) -> ids of the maps the program uses, in the kernel's order
Napi::Value ProgMapIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::vector<uint32_t> ids;
  // Two rounds: the first learns the count; a program's maps do not change once loaded.
  for (int round = 0; round < 2; round++) {
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof pi);
    pi.nr_map_ids = static_cast<uint32_t>(ids.size());
    pi.map_ids = reinterpret_cast<uint64_t>(ids.data());
    uint32_t len = sizeof pi;
    if (bpf_obj_get_info_by_fd(fd, &pi, &len) != 0) {
      int e = errno;
      ThrowErrno(env, e, "bpf(BPF_OBJ_GET_INFO_BY_FD)", "cannot read the program's map ids");
    }
    if (pi.nr_map_ids <= ids.size()) {
      ids.resize(pi.nr_map_ids);
      break;
    }
    ids.resize(pi.nr_map_ids);
  }
  Napi::Array out = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, ids[i]));
  return out;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openById", Napi::Function::New(env, OpenById));
  exports.Set("progMapIds", Napi::Function::New(env, ProgMapIds));
}
BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
