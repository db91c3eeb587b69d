// Each addon/*.cc file registers its exports here through a static initializer, so
// module init (addon.cc) never needs editing when a wrapped thing is added.
#pragma once
#include <napi.h>
#include <vector>

namespace bpfkit {

using InitFn = void (*)(Napi::Env env, Napi::Object exports);

std::vector<InitFn>& Registry();

struct Registrar {
  explicit Registrar(InitFn fn) { Registry().push_back(fn); }
};

}  // namespace bpfkit

#define BPFKIT_CONCAT2(a, b) a##b
#define BPFKIT_CONCAT(a, b) BPFKIT_CONCAT2(a, b)
#define BPFKIT_REGISTER(fn) static ::bpfkit::Registrar BPFKIT_CONCAT(bpfkit_registrar_, __LINE__)(fn)
