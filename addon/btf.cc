#include "btf.h"

#include <bpf/btf.h>

namespace bpfkit {

namespace {

unsigned SkipModifiers(const struct btf* btf, unsigned id) {
  for (int guard = 0; guard < 32 && id; guard++) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    if (!t) return 0;
    switch (btf_kind(t)) {
      case BTF_KIND_TYPEDEF:
      case BTF_KIND_CONST:
      case BTF_KIND_VOLATILE:
      case BTF_KIND_RESTRICT:
      case BTF_KIND_TYPE_TAG:
        id = t->type;
        break;
      default:
        return id;
    }
  }
  return id;
}

}  // namespace

Napi::Value DescribeBtfType(Napi::Env env, const struct btf* btf, unsigned id, int depth) {
  if (!btf || id == 0) return env.Null();
  id = SkipModifiers(btf, id);
  const struct btf_type* t = btf__type_by_id(btf, id);
  if (!t) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  const char* name = btf__name_by_offset(btf, t->name_off);
  o.Set("name", name ? name : "");
  long long size = btf__resolve_size(btf, id);
  o.Set("size", size < 0 ? 0.0 : static_cast<double>(size));
  switch (btf_kind(t)) {
    case BTF_KIND_INT: {
      o.Set("kind", "int");
      unsigned enc = btf_int_encoding(t);
      o.Set("signed", (enc & BTF_INT_SIGNED) != 0);
      o.Set("bits", btf_int_bits(t));
      break;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      o.Set("kind", btf_kind(t) == BTF_KIND_STRUCT ? "struct" : "union");
      Napi::Array members = Napi::Array::New(env);
      if (depth < 8) {
        const struct btf_member* m = btf_members(t);
        for (unsigned i = 0; i < btf_vlen(t); i++) {
          Napi::Object mo = Napi::Object::New(env);
          const char* mn = btf__name_by_offset(btf, m[i].name_off);
          mo.Set("name", mn ? mn : "");
          unsigned bitOff = btf_member_bit_offset(t, i);
          unsigned bitSize = btf_member_bitfield_size(t, i);
          mo.Set("offset", bitOff / 8);
          if (bitSize) {
            mo.Set("bitOffset", bitOff);
            mo.Set("bitSize", bitSize);
          }
          mo.Set("type", DescribeBtfType(env, btf, m[i].type, depth + 1));
          members.Set(i, mo);
        }
      }
      o.Set("members", members);
      break;
    }
    case BTF_KIND_ARRAY: {
      o.Set("kind", "array");
      const struct btf_array* a = btf_array(t);
      o.Set("length", a->nelems);
      o.Set("elem", depth < 8 ? DescribeBtfType(env, btf, a->type, depth + 1) : env.Null());
      break;
    }
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
      o.Set("kind", "enum");
      o.Set("signed", false);
      break;
    case BTF_KIND_PTR:
      o.Set("kind", "ptr");
      o.Set("size", 8);
      break;
    case BTF_KIND_FLOAT:
      o.Set("kind", "float");
      break;
    default:
      o.Set("kind", "other");
  }
  return o;
}

}  // namespace bpfkit
