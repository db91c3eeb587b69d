// One aclCompile call (see job.h): the records of each family in priority order, then
// up to ACL_MAX_TREES trees over them: the partitions the caller made, then a tree over
// the records each tree spilled (tree.h), all within the family's budget of
// ACL_TREE_WORDS words per record plus ACL_TREE_BASE_WORDS. Then one tree over all the
// family's records is tried, within Options::oneTreeFactor x the partitions' words: where
// it fits (sets the partitions do not help, like nested or crossing ranges), a packet
// walks one tree instead of up to three. The partitions come first because they bound
// the attempt: a set one tree does not suit (wildcards in different fields, ClassBench
// fw1) stops its attempt after a few times the words its partitions took.
#include "job.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <vector>

namespace bpfkit::acl {

// One tree over all of a family's records, built freely into words of its own as if at
// `at` (where the family's partition trees begin, or its trees would) and kept if it
// stays within `limit` words and spills nothing: it then replaces the trees from `at` on,
// and a packet walks one tree instead of one per partition. Otherwise nothing changes.
bool Job::OneTree(const Family& f, const std::vector<uint32_t>& recOff, size_t at, size_t firstTree, uint64_t limit) {
  std::vector<int32_t> all(f.count);
  for (uint32_t i = 0; i < f.count; i++) all[i] = static_cast<int32_t>(i);  // record order is priority order
  std::vector<uint32_t> tw;
  tw.reserve(kOwnWordsPad + std::min<uint64_t>(limit, opts.maxWords));  // (see Run: untouched pages cost nothing)
  tw.assign(kOwnWordsPad, 0);
  TreeBuilder tb(f, recOff, tw, opts);
  tb.split = true;
  tb.bounded = false;
  tb.noSpill = true;
  tb.limitBase = at - kOwnWordsPad;
  // (the attempt stops short of the blob's limit too: the partitions may fit where it does not)
  tb.treeEnd = std::min<uint64_t>(at + limit, opts.maxWords);
  uint32_t root;
  try {
    root = tb.Build(all, TreeBuilder::kFree);
  } catch (const TreeOver&) {
    return false;
  } catch (const TooBig&) {
    return false;
  }
  // node pointers are offsets in tw: moved to where the tree lands (a leaf's record
  // offsets are absolute already)
  const uint32_t shift = static_cast<uint32_t>(at);
  RelocateTree(tw, shift);
  words.resize(at);
  words.insert(words.end(), tw.begin() + kOwnWordsPad, tw.end());
  trees.resize(firstTree);
  trees.push_back({f.family, f.count, tb.nodes, tb.leaves, tb.maxDepth, tb.maxLeaf,
                   static_cast<uint32_t>(tw.size() - kOwnWordsPad), Relocate(root, shift), f.prio[0]});
  return true;
}

namespace {
// BPFKIT_ACL_TIMING set: each phase's time on stderr (profiling; off by default)
const bool kTiming = std::getenv("BPFKIT_ACL_TIMING") != nullptr;
double Ms(std::chrono::steady_clock::time_point& t) {
  auto n = std::chrono::steady_clock::now();
  double ms = std::chrono::duration<double, std::milli>(n - t).count();
  t = n;
  return ms;
}
}  // namespace

void Job::Run() {
  auto t = std::chrono::steady_clock::now();
  // records, plus room for trees as big as they usually get: growing a vector of
  // megabytes means copying it
  size_t recWords = 0;
  for (const Family& f : fam) recWords += size_t{f.count} * (ACL_REC_HDR + 2 * f.dims);
  // (reserved, not touched: the pages untouched cost nothing, and a vector that grows
  // copies what it has into pages it touches anew)
  size_t most = ACL_HDR_WORDS + recWords;
  for (const Family& f : fam) most += size_t{opts.treeWords} * f.count + opts.treeBaseWords;
  words.reserve(std::min(opts.maxWords, most));
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
      if (kTiming) std::fprintf(stderr, "acl-timing v%d records %.2f\n", f.family, Ms(t));
      const size_t treesAt = words.size();
      const size_t treesBefore = trees.size();
      // a family's trees may take this many words (the memory bound); one tree over all of
      // its records is worth trying within it
      const uint64_t bound = uint64_t{opts.treeWords} * f.count + opts.treeBaseWords;
      if (f.groups.size() <= 1) {
        Partitions(f, recOff);
        if (kTiming) std::fprintf(stderr, "acl-timing v%d tree %.2f\n", f.family, Ms(t));
        continue;
      }
      try {
        Partitions(f, recOff);
      } catch (...) {
        // the partitions do not fit (too complex, too big): perhaps one tree does
        words.resize(treesAt);
        trees.resize(treesBefore);
        if (OneTree(f, recOff, treesAt, treesBefore, bound)) continue;
        throw;
      }
      // One tree instead of the partitions, if it builds within the bound and within
      // oneTreeFactor x the partitions' words (the cap is also what a failed attempt
      // costs: it stops there).
      // Also at most oneTreeRecordWords a record: a failed attempt costs what it built, and
      // the partitions' 3x alone about doubled a ClassBench 10k compile (~20 -> ~44 ms);
      // the one trees kept (random, crossing, nested sets) took 2-11.4 words a record, the
      // failed attempts (fw1_100k, nested_100k) stopped at 16 after 60-90 ms, now at 12.
      if (kTiming) std::fprintf(stderr, "acl-timing v%d partitions %.2f\n", f.family, Ms(t));
      const uint64_t parts = words.size() - treesAt;
      const uint64_t perRecord = uint64_t{opts.oneTreeRecordWords} * f.count;
      if (trees.size() - treesBefore > 1)
        OneTree(f, recOff, treesAt, treesBefore, std::min({bound, uint64_t{opts.oneTreeFactor} * parts, perRecord}));
      if (kTiming) std::fprintf(stderr, "acl-timing v%d onetree %.2f\n", f.family, Ms(t));
    }
  } catch (const TooComplex& e) {
    tooComplex = true;
    error = e;
  } catch (const TooBig&) {
    tooBig = true;
  }
}

// The family's partition trees (the groups the caller made), then trees over the records
// they spilled; throws TooComplex or TooBig.
void Job::Partitions(const Family& f, const std::vector<uint32_t>& recOff) {
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

}  // namespace bpfkit::acl
