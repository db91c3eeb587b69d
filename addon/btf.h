// BTF type descriptions for JS: resolves typedefs and qualifiers and describes ints,
// structs/unions (member names, byte offsets, sizes), arrays and enums, so codecs can
// be checked against the kernel's idea of a map's key and value.
#pragma once
#include <napi.h>

struct btf;

namespace bpfkit {

// Returns a plain object ({kind, name, size, ...}) or null when id is 0.
Napi::Value DescribeBtfType(Napi::Env env, const struct btf* btf, unsigned id, int depth = 0);

}  // namespace bpfkit
