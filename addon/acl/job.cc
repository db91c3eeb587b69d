// One aclCompile call (see job.h): the records of each family in priority order, then
// up to ACL_MAX_TREES trees over them.
#include "job.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bpfkit::acl {

void Job::Run() {
  // records, plus room for trees as big as they usually get: growing a vector of
  // megabytes means copying it
  size_t recWords = 0;
  for (const Family& f : fam) recWords += size_t{f.count} * (ACL_REC_HDR + 2 * f.dims);
  words.reserve(std::min(opts.maxWords, ACL_HDR_WORDS + recWords + recWords / 2 + (size_t{1} << 18)));
  words.assign(ACL_HDR_WORDS, 0);
  try {
    for (Family& f : fam) {
      const int rw = ACL_REC_HDR + 2 * f.dims;
      size_t base = words.size();
      if (base + size_t{f.count} * rw > opts.maxWords) throw TooBig{};
      words.resize(base + size_t{f.count} * rw, 0);
      std::vector<uint32_t> recOff(f.count);
      for (uint32_t i = 0; i < f.count; i++) {
        size_t at = base + size_t{i} * rw;
        recOff[i] = static_cast<uint32_t>(at);
        words[at] = f.prio[i];
        words[at + 1] = f.meta[i];
        words[at + 2] = f.tag[i];
        for (int d = 0; d < f.dims; d++) {
          words[at + ACL_REC_HDR + 2 * d] = f.lo[size_t{i} * f.dims + d];
          words[at + ACL_REC_HDR + 1 + 2 * d] = f.hi[size_t{i} * f.dims + d];
        }
      }
      const size_t ntrees = std::min<size_t>(f.groups.size(), ACL_MAX_TREES);
      for (size_t t = 0; t < ntrees; t++) {
        const std::vector<int32_t>& g = f.groups[t];
        size_t before = words.size();
        TreeBuilder tb(f, recOff, words, opts);
        tb.split = true;
        uint32_t root = tb.Build(g);
        trees.push_back({f.family, static_cast<uint32_t>(g.size()), tb.nodes, tb.leaves, tb.maxDepth, tb.maxLeaf,
                         static_cast<uint32_t>(words.size() - before), root, f.prio[g[0]]});
      }
    }
  } catch (const TooComplex& e) {
    tooComplex = true;
    error = e;
  } catch (const TooBig&) {
    tooBig = true;
  }
}

}  // namespace bpfkit::acl
