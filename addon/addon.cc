// Module init only: every wrapped thing registers itself (registry.h).
#include <napi.h>

#include "registry.h"

namespace bpfkit {

std::vector<InitFn>& Registry() {
  static std::vector<InitFn> fns;
  return fns;
}

}  // namespace bpfkit

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  for (auto fn : bpfkit::Registry()) fn(env, exports);
  return exports;
}

NODE_API_MODULE(bpfkit, InitAll)
