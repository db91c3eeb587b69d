// aclCompile: the N-API side of the AclFirewall rule-set compiler (records + decision
// trees -> blob words). The JS caller (lib/modules/acl/classifier.ts) validates the rules,
// groups the records into trees and writes the blob header (lib/modules/acl/layout.ts);
// the trees are built by addon/acl/ (tree.h describes how) on the libuv pool, from the
// layout in bpf/include/acl_blob.h that the XDP program walks. It is native because a
// 10,000-rule set visits tens of thousands of nodes, each trying every dimension and
// several cut widths, and a rule-set swap should take milliseconds.
#include <napi.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "acl/job.h"
#include "registry.h"
#include "util.h"

namespace bpfkit {

namespace {

using acl::Family;
using acl::Job;
using acl::Options;
using acl::TreeStat;

template <typename T>
std::vector<T> CopyArray(const Napi::Value& v) {
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  const T* p = reinterpret_cast<const T*>(static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  return std::vector<T>(p, p + ta.ElementLength());
}

void ReadFamily(const Napi::Object& o, Family& f) {
  f.family = o.Get("family").As<Napi::Number>().Int32Value();
  f.dims = o.Get("dims").As<Napi::Number>().Int32Value();
  f.count = o.Get("count").As<Napi::Number>().Uint32Value();
  f.lo = CopyArray<uint32_t>(o.Get("lo"));
  f.hi = CopyArray<uint32_t>(o.Get("hi"));
  f.prio = CopyArray<uint32_t>(o.Get("prio"));
  f.meta = CopyArray<uint32_t>(o.Get("meta"));
  f.tag = CopyArray<uint32_t>(o.Get("tag"));
  f.widths = CopyArray<uint8_t>(o.Get("widths"));
  Napi::Array groups = o.Get("groups").As<Napi::Array>();
  for (uint32_t i = 0; i < groups.Length(); i++) f.groups.push_back(CopyArray<int32_t>(groups.Get(i)));
}

// Builds the result object of a finished job (on the JS thread).
Napi::Value Result(Napi::Env env, Job& job) {
  Napi::Object res = Napi::Object::New(env);
  if (job.tooBig) {
    res.Set("tooBig", true);
    return res;
  }
  if (job.tooComplex) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("family", job.error.family);
    e.Set("depth", job.error.depth);
    e.Set("rules", job.error.rules);
    res.Set("error", e);
    return res;
  }
  // the words move into the ArrayBuffer (no copy of megabytes); freed with it
  auto* owned = new std::vector<uint32_t>(std::move(job.words));
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, owned->data(), owned->size() * 4, [](Napi::Env, void*, std::vector<uint32_t>* v) { delete v; }, owned);
  res.Set("words", Napi::Uint32Array::New(env, owned->size(), ab, 0));
  Napi::Array trees = Napi::Array::New(env, job.trees.size());
  for (size_t i = 0; i < job.trees.size(); i++) {
    const TreeStat& t = job.trees[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("family", t.family);
    x.Set("records", t.records);
    x.Set("nodes", t.nodes);
    x.Set("leaves", t.leaves);
    x.Set("maxDepth", t.maxDepth);
    x.Set("maxLeaf", t.maxLeaf);
    x.Set("words", t.words);
    trees.Set(static_cast<uint32_t>(i), x);
  }
  res.Set("trees", trees);
  // each tree's root for the header (written in JS by writeBlobHeader), in the same order
  Napi::Array roots = Napi::Array::New(env, job.trees.size());
  for (size_t i = 0; i < job.trees.size(); i++) {
    const TreeStat& t = job.trees[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("family", t.family);
    x.Set("root", t.root);
    x.Set("prio", t.prio);
    roots.Set(static_cast<uint32_t>(i), x);
  }
  res.Set("roots", roots);
  return res;
}

// aclCompile(v4, v6, opts) -> Promise<{ words: Uint32Array, trees: [...], roots: [...] } | { error } | { tooBig }>.
// The inputs are copied on the JS thread and the trees are built on the libuv pool, so
// a 100k-rule compile does not stall the event loop. The JS caller
// (lib/modules/acl/classifier.ts) checks the rules; this only guards what it indexes.
Napi::Value AclCompile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto job = std::make_shared<Job>();
  ReadFamily(info[0].As<Napi::Object>(), job->fam[0]);
  ReadFamily(info[1].As<Napi::Object>(), job->fam[1]);
  for (const Family& f : job->fam) {
    size_t cells = size_t{f.count} * f.dims;
    bool ok = f.dims > 0 && f.dims <= ACL_KEY_WORDS && f.widths.size() == static_cast<size_t>(f.dims) &&
              f.lo.size() >= cells && f.hi.size() >= cells && f.prio.size() >= f.count && f.meta.size() >= f.count &&
              f.tag.size() >= f.count;
    for (uint8_t w : f.widths) ok = ok && w <= 32;
    for (const auto& g : f.groups) {
      ok = ok && !g.empty();
      for (int32_t r : g) ok = ok && r >= 0 && static_cast<uint32_t>(r) < f.count;
    }
    if (!ok) throw Napi::TypeError::New(env, "aclCompile: inconsistent record arrays");
  }
  Napi::Object o = info[2].As<Napi::Object>();
  Options& opts = job->opts;
  opts.maxCutBits = std::clamp(o.Get("maxCutBits").As<Napi::Number>().Int32Value(), 1, ACL_MAX_CUT_BITS);
  opts.maxBits = std::clamp(o.Get("maxBits").As<Napi::Number>().Int32Value(), 1, opts.maxCutBits);
  opts.binth = std::clamp(o.Get("binth").As<Napi::Number>().Int32Value(), 1, ACL_LEAF_MAX);
  opts.spfac = std::max(o.Get("spfac").As<Napi::Number>().Int32Value(), 0);
  Napi::Value tw = o.Get("treeWords");
  if (tw.IsNumber())
    opts.treeWords = static_cast<uint32_t>(std::clamp(tw.As<Napi::Number>().Int32Value(), 1, ACL_TREE_WORDS));
  Napi::Value mw = o.Get("maxWords");
  if (mw.IsNumber() && mw.As<Napi::Number>().DoubleValue() >= 1)
    opts.maxWords = std::min(acl::kMaxWords, static_cast<size_t>(mw.As<Napi::Number>().DoubleValue()));
  return RunAsync(
      env, "aclCompile",
      [job](Failure& f) {
        try {
          job->Run();
        } catch (const std::bad_alloc&) {
          f.Set(ENOMEM, "aclCompile", "out of memory while compiling the rule set");
        }
      },
      [job](Napi::Env e) { return Result(e, *job); });
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("aclCompile", Napi::Function::New<AclCompile>(env, "aclCompile"));
}

BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
