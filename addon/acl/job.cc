// One aclCompile call (see job.h): the records of each family in priority order, then
// up to ACL_MAX_TREES trees over them: the partitions the caller made, then a tree over
// the records each tree spilled (tree.h), all within the family's budget of
// ACL_TREE_WORDS words per record plus ACL_TREE_BASE_WORDS.
#include "job.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace bpfkit::acl {

// One tree over all of a family's records, if it builds freely within
// Options::oneTreeWords per record and without spilling: a packet then walks one tree
// instead of one per partition. Otherwise nothing is left of the attempt.
bool Job::OneTree(const Family& f, const std::vector<uint32_t>& recOff) {
  std::vector<int32_t> all(f.count);
  for (uint32_t i = 0; i < f.count; i++) all[i] = static_cast<int32_t>(i);  // record order is priority order
  const size_t before = words.size();
  TreeBuilder tb(f, recOff, words, opts);
  tb.split = true;
  tb.bounded = false;
  // (the attempt stops short of the blob's limit too: the partitions may fit where it does not)
  tb.treeEnd =
      std::min<uint64_t>(before + uint64_t{opts.oneTreeWords} * f.count + opts.treeBaseWords / 4, opts.maxWords);
  try {
    const uint32_t root = tb.Build(all, TreeBuilder::kFree);
    if (tb.spilled.empty()) {
      trees.push_back({f.family, f.count, tb.nodes, tb.leaves, tb.maxDepth, tb.maxLeaf,
                       static_cast<uint32_t>(words.size() - before), root, f.prio[0]});
      return true;
    }
  } catch (const TreeOver&) {
  }
  words.resize(before);
  return false;
}

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
      if (f.groups.size() > 1 && OneTree(f, recOff)) continue;
      std::vector<std::vector<int32_t>> groups(f.groups.begin(),
                                               f.groups.begin() + std::min<size_t>(f.groups.size(), ACL_MAX_TREES));
      // A tree's budget: its share, by records, of what the family's trees have left, of
      // which a quarter is kept for the trees of spilled records.
      uint64_t left = uint64_t{opts.treeWords} * f.count + opts.treeBaseWords;
      uint64_t recordsLeft = 0;
      for (const auto& g : groups) recordsLeft += g.size();
      for (size_t t = 0; t < groups.size(); t++) {
        const std::vector<int32_t> g = groups[t];
        const bool spill = t >= f.groups.size();
        const uint64_t share = spill ? left : (left - left / 4) * g.size() / recordsLeft;
        // not even room for a leaf: the bound is the promise, so the set is refused
        if (share < 1 + std::min<size_t>(g.size(), ACL_LEAF_MAX))
          throw TooComplex{f.family, 0, static_cast<uint32_t>(g.size())};
        const size_t before = words.size();
        // built freely first (the trees of sets that fit need no bound); bounded if that
        // outgrows the share
        auto tbp = std::make_unique<TreeBuilder>(f, recOff, words, opts);
        uint32_t root;
        try {
          tbp->split = true;
          tbp->bounded = false;
          tbp->treeEnd = before + share;
          root = tbp->Build(g, TreeBuilder::kFree);
        } catch (const TreeOver&) {
          words.resize(before);
          tbp = std::make_unique<TreeBuilder>(f, recOff, words, opts);
          tbp->split = true;
          root = tbp->Build(g, share);
        }
        TreeBuilder& tb = *tbp;
        const size_t used = words.size() - before;
        left -= std::min<uint64_t>(left, used);
        if (!spill) recordsLeft -= g.size();
        trees.push_back({f.family, static_cast<uint32_t>(g.size()), tb.nodes, tb.leaves, tb.maxDepth, tb.maxLeaf,
                         static_cast<uint32_t>(used), root, f.prio[g[0]]});
        if (tb.spilled.empty()) continue;
        std::vector<int32_t>& s = tb.spilled;
        std::sort(s.begin(), s.end());  // record order is priority order
        s.erase(std::unique(s.begin(), s.end()), s.end());
        if (groups.size() >= ACL_MAX_TREES) throw TooComplex{f.family, tb.maxDepth, static_cast<uint32_t>(s.size())};
        groups.push_back(std::move(s));
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
