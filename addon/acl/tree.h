// The AclFirewall rule-set compiler's decision trees: one family's records in, tree words
// out (the blob layout is bpf/include/acl_blob.h; the algorithm is described in
// lib/modules/acl/classifier.ts).
//
// A tree is built depth first. A node's rule list is a range of one stack (`pool_`); the
// node pushes its children's lists above it and pops them when its subtree is done, so
// building allocates nothing per node (tree.cc). A big tree's root has its children's
// subtrees (one per segment) built by up to four threads, each segment into words of its
// own with leaves shared only inside it; they are appended in order and relocated
// afterwards, so the words depend on the rules only, not on the threads or on which took
// which segment (build_threads.cc). The segments' threads count the words they reserve
// together, so a tree that outgrows its end stops as soon as their total does.
//
// Memory is bounded whatever the rules' shape: a tree is built within a budget of words
// (job.cc gives each family ACL_TREE_WORDS per record plus ACL_TREE_BASE_WORDS, shared by
// its trees). A tree is first built freely, stopping as soon as it outgrows its budget
// (TreeOver); only then is it built again `bounded`: a node takes a cut only if its
// children can at least be leaves within its budget (narrower cuts first), and shares the
// rest among its children by their rules, so replication stops where the budget ends. A leaf keeps its first
// ACL_LEAF_MAX rules; the rules after them are "spilled": the job builds a further tree over them (the program walks
// every tree and keeps the best priority, so a rule's copies in several trees are harmless).
#ifndef BPFKIT_ACL_TREE_H
#define BPFKIT_ACL_TREE_H

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../bpf/include/acl_blob.h"  // the blob layout, shared with the XDP program

namespace bpfkit::acl {

constexpr uint64_t Pow2(unsigned b) { return uint64_t{1} << b; }

// The largest blob a program variant addresses: beyond it a set is useless, and the words
// must stay an ArrayBuffer JS can hold.
constexpr size_t kMaxWords = ACL_MAX_BLOB_BYTES / 4;

struct Family {
  int family = 4;
  int dims = 0;
  uint32_t count = 0;
  std::vector<uint32_t> lo, hi, prio, meta, tag;
  std::vector<uint8_t> widths;
  std::vector<std::vector<int32_t>> groups;  // record indices per tree, in priority order
};

struct Options {
  int binth = 8;
  int spfac = 4;
  int maxBits = 8;
  int maxCutBits = ACL_MAX_CUT_BITS;
  size_t maxWords = kMaxWords;                   // stop when the blob would grow beyond this
  uint32_t treeWords = ACL_TREE_WORDS;           // a family's tree budget per record
  uint32_t treeBaseWords = ACL_TREE_BASE_WORDS;  // and in all
  uint32_t oneTreeFactor = 3;        // a family in one tree if it fits this x its partitions' words (job.cc)
  uint32_t oneTreeRecordWords = 12;  // ... and within this many words a record (job.cc)
};

// The region a node covers: per dimension, the base value and the free (uncut) bits.
struct Region {
  std::vector<uint64_t> base;
  std::vector<uint8_t> free;
};

// More rules than ACL_LEAF_MAX left over after the last tree a family may have.
struct TooComplex {
  int family;
  uint32_t depth, rules;
};

// The blob outgrew Options::maxWords: the rule-set map could not hold it anyway, and a
// set whose trees replicate rules without bound must not take the process's memory.
struct TooBig {};

// A tree built freely outgrew its budget (TreeBuilder::treeEnd): build it bounded.
struct TreeOver {};

// Trees built into words of their own (a split root's segments, build_threads.cc; the
// one-tree attempt, job.cc) begin them with one unused word, so that no node or leaf is at
// offset 0, which a pointer would read as ACL_PTR_EMPTY. They land with that word dropped.
constexpr uint32_t kOwnWordsPad = 1;

// A pointer into such words, landing with their first node at `at`: moved; a pointer
// that holds no word offset of theirs (an empty leaf, a record's offset, absolute
// already) is not.
inline uint32_t Relocate(uint32_t ptr, uint32_t at) {
  return ptr == ACL_PTR_EMPTY || (ptr & ACL_PTR_REC) ? ptr : ptr - kOwnWordsPad + at;
}

// Moves every child pointer of the nodes in such words `w` to where they land (`at`).
inline void RelocateTree(std::vector<uint32_t>& w, uint32_t at) {
  for (size_t q = kOwnWordsPad; q < w.size();) {
    if (w[q] & ACL_LEAF) {  // record offsets: absolute already
      q += 1 + (w[q] & 0xffff);
      continue;
    }
    const size_t kids = size_t{1} << ((w[q] >> 16) & 0xff);
    for (size_t i = 1; i <= kids; i++) w[q + i] = Relocate(w[q + i], at);
    q += 1 + kids;
  }
}

// The leaves a builder wrote, by a hash of their records, so identical leaves are shared
// (tree.cc Leaf): open addressing over one array, no allocation per leaf.
class LeafTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  // Calls same(at) for each leaf stored under hash h until it says true; returns that
  // leaf's offset, or kNone.
  template <typename Same>
  uint32_t Find(uint32_t h, Same same) const {
    if (slots_.empty()) return kNone;
    for (size_t i = Mix(h) & mask_;; i = (i + 1) & mask_) {
      const Slot& x = slots_[i];
      if (x.at == kNone) return kNone;
      if (x.h == h && same(x.at)) return x.at;
    }
  }
  void Add(uint32_t h, uint32_t at) {
    if (2 * (used_.size() + 1) > slots_.size()) Grow();
    size_t i = Mix(h) & mask_;
    while (slots_[i].at != kNone) i = (i + 1) & mask_;
    slots_[i] = {h, at};
    used_.push_back(static_cast<uint32_t>(i));
  }
  // empties the table in time of the leaves it holds (a split root's builder clears it
  // for each of up to 65,536 segments)
  void Clear() {
    for (uint32_t i : used_) slots_[i].at = kNone;
    used_.clear();
  }

 private:
  struct Slot {
    uint32_t h = 0, at = kNone;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> used_;  // occupied slots
  size_t mask_ = 0;
  static size_t Mix(uint32_t h) { return (h ^ (h >> 16)) * 0x9E3779B1u; }
  void Grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(std::max<size_t>(64, old.size() * 2), Slot{});
    mask_ = slots_.size() - 1;
    used_.clear();
    for (const Slot& x : old) {
      if (x.at == kNone) continue;
      size_t i = Mix(x.h) & mask_;
      while (slots_[i].at != kNone) i = (i + 1) & mask_;
      slots_[i] = x;
      used_.push_back(static_cast<uint32_t>(i));
    }
  }
};

class TreeBuilder {
 public:
  TreeBuilder(const Family& fam, const std::vector<uint32_t>& recOff, std::vector<uint32_t>& out, const Options& o)
      : fam_(fam), recOff_(recOff), out_(&out), o_(o), D_(fam.dims) {
    diff_.resize(Pow2(o.maxCutBits) + 2);
    edge_.resize(Pow2(o.maxCutBits) + 2);
  }

  uint32_t nodes = 0, leaves = 0, maxDepth = 0, maxLeaf = 0;
  // records left out of full leaves (unsorted, may repeat): the next tree's
  std::vector<int32_t> spilled;
  // words written before this builder's out_ begins, for the maxWords check (a segment
  // of a split root, built into words of its own)
  size_t limitBase = 0;
  // build the root's subtrees on several threads (when the root has at least kSplitMin rules)
  bool split = false;
  static constexpr uint32_t kSplitMin = 2048;
  // bounded: every node keeps within its budget; otherwise the budget is not looked at
  // but the words may not reach treeEnd (in the same coordinates as limitBase + words)
  bool bounded = true;
  size_t treeEnd = SIZE_MAX;
  // the words of all the segments of a split root, reserved so far (build_threads.cc): a
  // tree that outgrows treeEnd stops on every thread as soon as the segments' total does,
  // not when each segment alone does
  std::atomic<size_t>* sharedWords = nullptr;
  // a leaf that would spill throws TreeOver instead (an attempt that is kept only if it
  // spills nothing stops at the first spill)
  bool noSpill = false;
  static constexpr uint64_t kFree = uint64_t{1} << 60;  // the budget of a tree built freely

  // Builds the tree of `list` (record indices in priority order) into at most `budget`
  // words (at least 1 + ACL_LEAF_MAX); returns the root's word offset. Throws TooBig.
  uint32_t Build(const std::vector<int32_t>& list, uint64_t budget) {
    Region reg;
    reg.base.assign(D_, 0);
    reg.free.assign(fam_.widths.begin(), fam_.widths.end());
    pool_.assign(list.begin(), list.end());
    return Node(0, static_cast<uint32_t>(list.size()), reg, 0, budget);
  }

 private:
  const Family& fam_;
  const std::vector<uint32_t>& recOff_;
  std::vector<uint32_t>* out_;
  const Options& o_;
  const int D_;
  std::vector<int32_t> pool_;
  LeafTable leafCache_;
  std::vector<int32_t> diff_;
  std::vector<uint8_t> edge_;
  std::vector<uint64_t> L_, H_, Ls_, Hs_;
  std::vector<uint32_t> spanA_, spanB_, cuts_, count_;
  // results of EvalCut and ChooseCut
  uint32_t eMax_ = 0;
  uint64_t eCost_ = 0;
  int cutD_ = -1, cutBits_ = 0;
  uint32_t cutMax_ = 0;

  uint32_t Reserve(size_t n) {
    std::vector<uint32_t>& out = *out_;
    size_t at = out.size();
    if (limitBase + at + n > treeEnd) throw TreeOver{};
    if (limitBase + at + n > o_.maxWords) throw TooBig{};
    if (sharedWords) {
      // the segments are appended (all of them, or an error is thrown): their total is
      // what the tree would take, whatever the threads' order, so this outcome is the
      // one of appending them in order, but found early (at a jump over both limits,
      // appending would have said TooBig first; a tree that outgrows its budget is the
      // more useful answer there)
      const size_t total = sharedWords->fetch_add(n, std::memory_order_relaxed) + n;
      if (total > std::min(treeEnd, o_.maxWords)) {
        if (o_.maxWords < treeEnd) throw TooBig{};
        throw TreeOver{};
      }
    }
    out.resize(at + n, 0);
    return static_cast<uint32_t>(at);
  }

  uint64_t Lo(int32_t r, int d) const { return fam_.lo[static_cast<size_t>(r) * D_ + d]; }
  uint64_t Hi(int32_t r, int d) const { return fam_.hi[static_cast<size_t>(r) * D_ + d]; }

  bool Covers(int32_t r, const Region& reg) const {
    for (int d = 0; d < D_; d++) {
      uint64_t b = reg.base[d];
      if (Lo(r, d) > b || Hi(r, d) < b + Pow2(reg.free[d]) - 1) return false;
    }
    return true;
  }

  // tree.cc
  uint32_t Leaf(uint32_t off, uint32_t n);
  int TowardsFirst(int32_t r, const Region& reg) const;
  uint32_t Node(uint32_t off, uint32_t n, Region& reg, uint32_t depth, uint64_t budget);
  uint64_t Segment(uint32_t off, uint32_t n, int d, unsigned bits, const Region& reg);
  bool ChooseCut(uint32_t off, uint32_t n, const Region& reg, uint64_t budget);
  void EvalCut(uint32_t m, uint32_t full, unsigned free, unsigned bits);
  // build_threads.cc
  void Segments(uint32_t at, uint32_t nc, uint32_t segAt, uint32_t nseg, int d, uint64_t base, uint64_t mask,
                const Region& reg, uint32_t depth, const std::vector<uint64_t>& budgets);
};

}  // namespace bpfkit::acl

#endif
