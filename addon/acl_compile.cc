// aclCompile: the AclFirewall rule-set compiler (records + decision trees -> blob words).
//
// The algorithm and the blob layout are described in lib/modules/acl/classifier.ts (the
// JS side that validates rules, groups records into trees and fills the blob header) and
// bpf/include/acl_blob.h (what the XDP program walks). This file builds the trees: it is
// native because a 10,000-rule set visits tens of thousands of nodes, each trying every
// dimension and several cut widths, and a rule-set swap should take milliseconds.
//
// A tree is built depth first. A node's rule list is a range of one stack (`pool_`); the
// node pushes its children's lists above it and pops them when its subtree is done, so
// building allocates nothing per node. A big tree's root has its children's subtrees
// (one per segment) built by up to four threads, each segment into words of its own with
// leaves shared only inside it; they are appended in order and relocated afterwards, so
// the words depend on the rules only, not on the threads or on which took which segment.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../bpf/include/acl_blob.h"  // the blob layout, shared with the XDP program
#include "registry.h"
#include "util.h"

namespace bpfkit {

namespace {

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
  int maxCutBits = 16;
  size_t maxWords = kMaxWords;  // stop when the blob would grow beyond this
};

struct TreeStat {
  int family;
  uint32_t records, nodes, leaves, maxDepth, maxLeaf, words;
};

// The region a node covers: per dimension, the base value and the free (uncut) bits.
struct Region {
  std::vector<uint64_t> base;
  std::vector<uint8_t> free;
};

struct TooComplex {
  int family;
  uint32_t depth, rules;
};

// The blob outgrew Options::maxWords: the rule-set map could not hold it anyway, and a
// set whose trees replicate rules without bound must not take the process's memory.
struct TooBig {};

class TreeBuilder {
 public:
  TreeBuilder(const Family& fam, const std::vector<uint32_t>& recOff, std::vector<uint32_t>& out, const Options& o)
      : fam_(fam), recOff_(recOff), out_(&out), o_(o), D_(fam.dims) {
    diff_.resize(Pow2(o.maxCutBits) + 2);
    edge_.resize(Pow2(o.maxCutBits) + 2);
  }

  uint32_t nodes = 0, leaves = 0, maxDepth = 0, maxLeaf = 0;
  // words written before this builder's out_ begins, for the maxWords check (a segment
  // of a split root, built into words of its own)
  size_t limitBase = 0;
  // build the root's subtrees on several threads (when the root has at least kSplitMin rules)
  bool split = false;
  static constexpr uint32_t kSplitMin = 2048;

  uint32_t Build(const std::vector<int32_t>& list) {
    Region reg;
    reg.base.assign(D_, 0);
    reg.free.assign(fam_.widths.begin(), fam_.widths.end());
    pool_.assign(list.begin(), list.end());
    return Node(0, static_cast<uint32_t>(list.size()), reg, 0);
  }

 private:
  const Family& fam_;
  const std::vector<uint32_t>& recOff_;
  std::vector<uint32_t>* out_;
  const Options& o_;
  const int D_;
  std::vector<int32_t> pool_;
  std::unordered_map<uint32_t, std::vector<uint32_t>> leafCache_;
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
    if (limitBase + at + n > o_.maxWords) throw TooBig{};
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

  uint32_t Leaf(uint32_t off, uint32_t n, uint32_t depth) {
    if (n > ACL_LEAF_MAX) throw TooComplex{fam_.family, depth, n};
    std::vector<uint32_t>& out = *out_;
    // identical leaves are shared: FNV-1a over the record indices, checked word by word
    uint32_t h = 0x811c9dc5u ^ n;
    for (uint32_t i = 0; i < n; i++) h = (h ^ static_cast<uint32_t>(pool_[off + i])) * 0x01000193u;
    auto it = leafCache_.find(h);
    if (it != leafCache_.end()) {
      for (uint32_t at : it->second) {
        if ((out[at] & 0xffff) != n) continue;
        bool same = true;
        for (uint32_t i = 0; i < n && same; i++) same = out[at + 1 + i] == recOff_[pool_[off + i]];
        if (same) return at;
      }
    }
    uint32_t at = Reserve(1 + n);
    out[at] = ACL_LEAF | n;
    for (uint32_t i = 0; i < n; i++) out[at + 1 + i] = recOff_[pool_[off + i]];
    leafCache_[h].push_back(at);
    leaves++;
    maxLeaf = std::max(maxLeaf, n);
    return at;
  }

  // A dimension where rule r does not yet cover the region, or -1.
  int TowardsFirst(int32_t r, const Region& reg) const {
    for (int d = 0; d < D_; d++) {
      unsigned free = reg.free[d];
      uint64_t b = reg.base[d];
      if (free > 0 && (Lo(r, d) > b || Hi(r, d) < b + Pow2(free) - 1)) return d;
    }
    return -1;
  }

  uint32_t Node(uint32_t off, uint32_t n, Region& reg, uint32_t depth) {
    for (uint32_t i = 0; i < n; i++) {
      if (Covers(pool_[off + i], reg)) {
        n = i + 1;  // later rules can never be the first match here
        break;
      }
    }
    maxDepth = std::max(maxDepth, depth);
    if (n <= static_cast<uint32_t>(o_.binth) || depth >= ACL_MAX_DEPTH - 1) return Leaf(off, n, depth);
    int d = -1;
    unsigned bits = 0;
    if (ChooseCut(off, n, reg)) {
      d = cutD_;
      bits = cutBits_;
    }
    if (d < 0 || cutMax_ == n) {
      // Nested rules overlapping at one point: no cut separates them. Keep them in one
      // leaf if it is short enough; else narrow the region towards the first rule until
      // it covers the region (and the rules after it drop out).
      if (n <= ACL_LEAF_MAX) return Leaf(off, n, depth);
      d = TowardsFirst(pool_[off], reg);
      if (d < 0) return Leaf(off, n, depth);
      bits = std::min<unsigned>(reg.free[d], 8);
    }
    const unsigned free = reg.free[d];
    const unsigned shift = free - bits;
    const uint64_t base = reg.base[d];
    const uint64_t top = base + Pow2(free) - 1;
    const uint32_t nc = 1u << bits;
    const uint64_t mask = Pow2(shift) - 1;
    // Segments: runs of children no rule starts or ends inside, so every rule present
    // covers each of them whole and they share one subtree.
    if (spanA_.size() < n) {
      spanA_.resize(n);
      spanB_.resize(n);
    }
    // The segment starts, sorted and unique. With few children per rule (the usual case)
    // they are marked in edge_ and read back in order, and each child's segment is looked
    // up in diff_; with many children per rule they are sorted and binary-searched.
    const bool marked = nc <= 16 * uint64_t{n} + 64;
    if (marked) std::fill(edge_.begin(), edge_.begin() + nc, 0);
    cuts_.clear();
    cuts_.push_back(0);
    for (uint32_t i = 0; i < n; i++) {
      int32_t r = pool_[off + i];
      uint64_t l = Lo(r, d), h = Hi(r, d);
      uint64_t lr = l <= base ? 0 : l - base;
      uint64_t hr = h >= top ? top - base : h - base;
      uint32_t a = static_cast<uint32_t>(lr >> shift), b = static_cast<uint32_t>(hr >> shift);
      spanA_[i] = a;
      spanB_[i] = b;
      if (marked) {
        edge_[a] = 1;
        if (b + 1 < nc) edge_[b + 1] = 1;
        if ((lr & mask) && a + 1 < nc) edge_[a + 1] = 1;  // a rule starting inside child a
        if ((hr + 1) & mask) edge_[b] = 1;                // a rule ending inside child b
        continue;
      }
      cuts_.push_back(a);
      if (b + 1 < nc) cuts_.push_back(b + 1);
      if ((lr & mask) && a + 1 < nc) cuts_.push_back(a + 1);  // a rule starting inside child a
      if ((hr + 1) & mask) cuts_.push_back(b);                // a rule ending inside child b
    }
    if (marked) {
      int32_t seg = 0;
      diff_[0] = 0;
      for (uint32_t c = 1; c < nc; c++) {
        if (edge_[c]) {
          cuts_.push_back(c);
          seg++;
        }
        diff_[c] = seg;  // the segment child c is in
      }
    } else {
      std::sort(cuts_.begin(), cuts_.end());
      cuts_.erase(std::unique(cuts_.begin(), cuts_.end()), cuts_.end());
    }
    const uint32_t nseg = static_cast<uint32_t>(cuts_.size());
    // on the pool: segment starts, list offsets, list lengths (nseg each), then the lists
    const size_t saved = pool_.size();
    const uint32_t segAt = static_cast<uint32_t>(saved);
    pool_.resize(saved + 3 * size_t{nseg});
    std::copy(cuts_.begin(), cuts_.end(), pool_.begin() + segAt);
    auto segOf = [&](uint32_t c) {
      if (marked) return static_cast<uint32_t>(diff_[c]);
      return static_cast<uint32_t>(std::upper_bound(cuts_.begin(), cuts_.end(), c) - cuts_.begin() - 1);
    };
    count_.assign(nseg, 0);
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t f = segOf(spanA_[i]), l = segOf(spanB_[i]);
      spanA_[i] = f;
      spanB_[i] = l;
      for (uint32_t j = f; j <= l; j++) count_[j]++;
      total += l - f + 1;
    }
    const size_t listsAt = pool_.size();
    pool_.resize(listsAt + total);
    for (uint32_t j = 0, at = static_cast<uint32_t>(listsAt); j < nseg; j++) {
      pool_[segAt + nseg + j] = static_cast<int32_t>(at);
      pool_[segAt + 2 * nseg + j] = 0;
      at += count_[j];
    }
    for (uint32_t i = 0; i < n; i++) {
      int32_t r = pool_[off + i];
      for (uint32_t j = spanA_[i]; j <= spanB_[i]; j++) pool_[pool_[segAt + nseg + j] + pool_[segAt + 2 * nseg + j]++] = r;
    }
    const uint32_t at = Reserve(1 + nc);
    std::vector<uint32_t>& out = *out_;  // the vector (children grow it: index it afresh)
    out[at] = static_cast<uint32_t>(d) | (shift << 8) | (bits << 16);
    nodes++;
    // children: the region is narrowed in place and restored (depth-first build)
    reg.free[d] = static_cast<uint8_t>(shift);
    if (split && depth == 0 && n >= kSplitMin && nseg >= 2) {
      Segments(at, nc, segAt, nseg, d, base, mask, reg, depth);
    } else {
      for (uint32_t j = 0; j < nseg; j++) {
        uint32_t c0 = static_cast<uint32_t>(pool_[segAt + j]);
        uint32_t c1 = j + 1 < nseg ? static_cast<uint32_t>(pool_[segAt + j + 1]) : nc;
        reg.base[d] = base + uint64_t{c0} * (mask + 1);
        uint32_t child = Node(static_cast<uint32_t>(pool_[segAt + nseg + j]), static_cast<uint32_t>(pool_[segAt + 2 * nseg + j]), reg,
                              depth + 1);
        std::fill(out.begin() + at + 1 + c0, out.begin() + at + 1 + c1, child);
      }
    }
    reg.base[d] = base;
    reg.free[d] = static_cast<uint8_t>(free);
    pool_.resize(saved);
    return at;
  }

  // One segment's subtree of a split root: its words (offsets from 0), or its error.
  struct Seg {
    std::vector<uint32_t> words;
    uint32_t child = 0;
    std::exception_ptr error;
    bool tooComplex = false;
    size_t wordsAtError = 0;
  };

  // Builds the subtrees of the node at `at` (its segments are on the pool at segAt) on
  // this thread and up to three more, each taking the next segment not yet taken; then
  // appends them in segment order, node pointers moved by where they land. Errors are
  // those of building the segments one after the other here: the first segment's that
  // fails, "too big" first when the words before its error already outgrow the limit.
  void Segments(uint32_t at, uint32_t nc, uint32_t segAt, uint32_t nseg, int d, uint64_t base, uint64_t mask, const Region& reg,
                uint32_t depth) {
    std::vector<Seg> segs(nseg);
    std::atomic<uint32_t> next{0};
    std::atomic<uint32_t> firstFailed{nseg};  // segments after it cannot change the outcome
    const size_t limit = limitBase + out_->size();
    struct Worker {
      uint32_t nodes = 0, leaves = 0, maxDepth = 0, maxLeaf = 0;
      std::exception_ptr error;  // could not even start (out of memory)
    };
    // the workers only read this builder's pool (nothing writes it until they are joined)
    auto work = [&](Worker& w) {
      try {
        std::vector<uint32_t> none;
        TreeBuilder tb(fam_, recOff_, none, o_);
        Region r = reg;
        for (uint32_t j; (j = next.fetch_add(1)) < nseg;) {
          if (j > firstFailed.load()) continue;
          Seg& sg = segs[j];
          try {
            tb.out_ = &sg.words;
            tb.limitBase = limit;
            tb.leafCache_.clear();
            const uint32_t lo = static_cast<uint32_t>(pool_[segAt + nseg + j]), len = static_cast<uint32_t>(pool_[segAt + 2 * nseg + j]);
            tb.pool_.assign(pool_.begin() + lo, pool_.begin() + lo + len);
            r.base[d] = base + uint64_t{static_cast<uint32_t>(pool_[segAt + j])} * (mask + 1);
            sg.child = tb.Node(0, len, r, depth + 1);
          } catch (...) {
            sg.error = std::current_exception();
            try {
              std::rethrow_exception(sg.error);
            } catch (const TooComplex&) {
              sg.tooComplex = true;
            } catch (...) {
            }
            sg.wordsAtError = sg.words.size();
            for (uint32_t f = firstFailed.load(); j < f && !firstFailed.compare_exchange_weak(f, j);) {
            }
            r = reg;  // a failed subtree leaves the region narrowed
          }
        }
        w.nodes = tb.nodes;
        w.leaves = tb.leaves;
        w.maxDepth = tb.maxDepth;
        w.maxLeaf = tb.maxLeaf;
      } catch (...) {
        w.error = std::current_exception();
      }
    };
    const unsigned hw = std::thread::hardware_concurrency();
    const unsigned helpers = std::min(3u, std::min(hw > 1 ? hw - 1 : 0u, nseg - 1));
    std::vector<Worker> workers(1 + helpers);
    std::vector<std::thread> threads;
    threads.reserve(helpers);
    for (unsigned i = 0; i < helpers; i++) {
      try {
        threads.emplace_back(work, std::ref(workers[1 + i]));
      } catch (...) {
        break;  // fewer threads: the same words
      }
    }
    work(workers[0]);
    for (std::thread& t : threads) t.join();
    for (const Worker& w : workers) {
      if (w.error) std::rethrow_exception(w.error);
    }
    std::vector<uint32_t>& out = *out_;
    for (uint32_t j = 0; j < nseg; j++) {
      Seg& sg = segs[j];
      const size_t landAt = out.size();
      if (sg.error) {
        if (sg.tooComplex && limitBase + landAt + sg.wordsAtError > o_.maxWords) throw TooBig{};
        std::rethrow_exception(sg.error);
      }
      if (limitBase + landAt + sg.words.size() > o_.maxWords) throw TooBig{};
      const uint32_t shift = static_cast<uint32_t>(landAt);
      std::vector<uint32_t>& w = sg.words;
      for (size_t q = 0; q < w.size();) {
        if (w[q] & ACL_LEAF) {  // record offsets: absolute already
          q += 1 + (w[q] & 0xffff);
          continue;
        }
        const size_t kids = size_t{1} << ((w[q] >> 16) & 0xff);
        for (size_t i = 1; i <= kids; i++) w[q + i] += shift;
        q += 1 + kids;
      }
      out.insert(out.end(), w.begin(), w.end());
      std::vector<uint32_t>().swap(w);
      const uint32_t c0 = static_cast<uint32_t>(pool_[segAt + j]);
      const uint32_t c1 = j + 1 < nseg ? static_cast<uint32_t>(pool_[segAt + j + 1]) : nc;
      std::fill(out.begin() + at + 1 + c0, out.begin() + at + 1 + c1, sg.child + shift);
    }
    for (const Worker& w : workers) {
      nodes += w.nodes;
      leaves += w.leaves;
      maxDepth = std::max(maxDepth, w.maxDepth);
      maxLeaf = std::max(maxLeaf, w.maxLeaf);
    }
  }

  // Best (dimension, bits) into cutD_/cutBits_/cutMax_: the cut that leaves the smallest
  // largest child, with the memory it costs (distinct children, estimated from the rule
  // boundaries) within spfac x the node's rules. False when no cut separates the rules.
  bool ChooseCut(uint32_t off, uint32_t n, const Region& reg) {
    const uint64_t budget = uint64_t(o_.spfac) * n + 256;
    int bestD = -1;
    unsigned bestBits = 0;
    uint32_t bestMax = 0;
    uint64_t bestCost = 0;
    if (L_.size() < n) {
      L_.resize(n);
      H_.resize(n);
      Ls_.resize(n);
      Hs_.resize(n);
    }
    for (int d = 0; d < D_; d++) {
      const unsigned free = reg.free[d];
      if (free == 0) continue;
      const uint64_t base = reg.base[d];
      const uint64_t top = base + Pow2(free) - 1;
      const unsigned maxB = std::min<unsigned>(
          free, n > 4096 ? o_.maxCutBits : n > 256 ? std::max(12, o_.maxBits) : n > 32 ? o_.maxBits : std::min(o_.maxBits, 6));
      const unsigned maxShift = free - maxB;
      // offsets inside the region of the rules that do not span it whole
      uint32_t m = 0;
      uint64_t firstEnd = ~uint64_t{0}, lastStart = 0;  // children, at the widest cut
      for (uint32_t i = 0; i < n; i++) {
        int32_t r = pool_[off + i];
        uint64_t l = Lo(r, d), h = Hi(r, d);
        if (l <= base && h >= top) continue;
        L_[m] = l <= base ? 0 : l - base;
        H_[m] = h >= top ? top - base : h - base;
        lastStart = std::max(lastStart, L_[m] >> maxShift);
        firstEnd = std::min(firstEnd, H_[m] >> maxShift);
        m++;
      }
      // Every rule reaches the child where the first one ends: that child holds them all
      // at this width and at any narrower one, so this dimension cannot separate them.
      if (m == 0 || lastStart <= firstEnd) continue;
      const uint32_t full = n - m;
      // wide cuts over few rules are swept over the sorted bounds (see EvalCut)
      if (Pow2(maxB) > 4 * uint64_t{m} + 256) {
        std::copy(L_.begin(), L_.begin() + m, Ls_.begin());
        std::copy(H_.begin(), H_.begin() + m, Hs_.begin());
        std::sort(Ls_.begin(), Ls_.begin() + m);
        std::sort(Hs_.begin(), Hs_.begin() + m);
      }
      // The largest child only shrinks and the cost only grows with more bits: find the
      // widest cut within the budget (binary search), then narrow it while the largest
      // child stays the same (same split, less memory).
      EvalCut(m, full, free, maxB);
      uint32_t pMax = eMax_;
      uint64_t pCost = eCost_;
      unsigned bits = maxB;
      if (pCost > budget && maxB > 1) {
        unsigned a = 1, b = maxB - 1;
        EvalCut(m, full, free, 1);
        pMax = eMax_;
        pCost = eCost_;
        bits = 1;
        while (a < b) {
          unsigned mid = (a + b + 1) >> 1;
          EvalCut(m, full, free, mid);
          if (eCost_ <= budget) {
            a = mid;
            pMax = eMax_;
            pCost = eCost_;
            bits = mid;
          } else {
            b = mid - 1;
          }
        }
      }
      if (pMax >= n) continue;  // this dimension does not separate these rules
      for (int step = 0; step < 3 && bits > 1; step++) {
        EvalCut(m, full, free, bits - 1);
        if (eMax_ != pMax) break;
        pCost = eCost_;
        bits--;
      }
      if (bestD < 0 || pMax < bestMax || (pMax == bestMax && pCost < bestCost)) {
        bestD = d;
        bestBits = bits;
        bestMax = pMax;
        bestCost = pCost;
      }
    }
    cutD_ = bestD;
    cutBits_ = static_cast<int>(bestBits);
    cutMax_ = bestMax;
    return bestD >= 0;
  }

  // Largest child (eMax_) and estimated words (eCost_) of cutting `bits` of a dimension
  // whose non-spanning rules' offsets are in L_/H_ (and sorted in Ls_/Hs_).
  void EvalCut(uint32_t m, uint32_t full, unsigned free, unsigned bits) {
    const unsigned shift = free - bits;
    const uint64_t mask = Pow2(shift) - 1;
    const uint32_t nc = 1u << bits;
    if (nc > 4 * uint64_t{m} + 256) {
      // Few rules, many children: sweep the boundaries in order. With the bounds sorted,
      // each kind of boundary comes in ascending child order at any width, so the sweep
      // merges four ascending streams: rules starting in a child (run++), rules ending
      // before it (run--), and children a rule starts or ends inside (made distinct).
      const uint64_t END = ~uint64_t{0};
      uint32_t iS = 0, iE = 0, iDl = 0, iDh = 0;
      auto posS = [&](uint32_t j) { return j < m ? Ls_[j] >> shift : END; };
      auto posE = [&](uint32_t j) { return j < m ? (Hs_[j] >> shift) + 1 : END; };
      auto posDl = [&](uint32_t j) { return j < m ? (Ls_[j] >> shift) + ((Ls_[j] & mask) ? 1 : 0) : END; };
      auto posDh = [&](uint32_t j) { return j < m ? (Hs_[j] >> shift) + (((Hs_[j] + 1) & mask) ? 0 : 1) : END; };
      int64_t run = 0, maxChild = 0;
      uint64_t cost = nc + full;  // child 0 starts a segment
      uint64_t lastPos = 0;
      for (;;) {
        uint64_t pos = std::min(std::min(posS(iS), posE(iE)), std::min(posDl(iDl), posDh(iDh)));
        if (pos == END) break;
        while (posE(iE) == pos) {
          run--;
          iE++;
        }
        while (posDl(iDl) == pos) iDl++;
        while (posDh(iDh) == pos) iDh++;
        while (posS(iS) == pos) {
          run++;
          iS++;
        }
        maxChild = std::max(maxChild, run);
        if (pos < nc && pos != lastPos)
          cost += run + full;
        else if (pos == 0)
          cost += run;
        lastPos = pos;
      }
      eMax_ = static_cast<uint32_t>(maxChild) + full;
      eCost_ = cost;
      return;
    }
    std::fill(diff_.begin(), diff_.begin() + nc + 1, 0);
    std::fill(edge_.begin(), edge_.begin() + nc + 1, 0);
    for (uint32_t j = 0; j < m; j++) {
      uint64_t lj = L_[j], hj = H_[j];
      uint32_t a = static_cast<uint32_t>(lj >> shift), b = static_cast<uint32_t>(hj >> shift);
      diff_[a]++;
      diff_[b + 1]--;
      edge_[a] = 1;
      edge_[b + 1] = 1;
      // a rule starting or ending inside a child makes that child unlike its neighbours
      if (lj & mask) edge_[a + 1] = 1;
      if ((hj + 1) & mask) edge_[b] = 1;
    }
    int64_t run = 0, maxChild = 0;
    uint64_t cost = nc;
    for (uint32_t c = 0; c < nc; c++) {
      run += diff_[c];
      maxChild = std::max(maxChild, run);
      if (edge_[c] || c == 0) cost += run + full;
    }
    eMax_ = static_cast<uint32_t>(maxChild) + full;
    eCost_ = cost;
  }
};

struct Job {
  Family fam[2];
  Options opts;
  std::vector<uint32_t> words;
  std::vector<TreeStat> trees;
  bool tooComplex = false;
  bool tooBig = false;
  TooComplex error{};

  void Run() {
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
        const int rootsAt = f.family == 4 ? ACL_H_V4_ROOTS : ACL_H_V6_ROOTS;
        const size_t ntrees = std::min<size_t>(f.groups.size(), ACL_MAX_TREES);
        for (size_t t = 0; t < ntrees; t++) {
          const std::vector<int32_t>& g = f.groups[t];
          size_t before = words.size();
          TreeBuilder tb(f, recOff, words, opts);
          tb.split = true;
          uint32_t root = tb.Build(g);
          words[rootsAt + 2 * t] = root;
          words[rootsAt + 2 * t + 1] = f.prio[g[0]];
          trees.push_back({f.family, static_cast<uint32_t>(g.size()), tb.nodes, tb.leaves, tb.maxDepth, tb.maxLeaf,
                           static_cast<uint32_t>(words.size() - before)});
        }
        words[f.family == 4 ? ACL_H_V4_TREES : ACL_H_V6_TREES] = static_cast<uint32_t>(ntrees);
      }
    } catch (const TooComplex& e) {
      tooComplex = true;
      error = e;
    } catch (const TooBig&) {
      tooBig = true;
    }
  }
};

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
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, owned->data(), owned->size() * 4,
                                                [](Napi::Env, void*, std::vector<uint32_t>* v) { delete v; }, owned);
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
  return res;
}

// aclCompile(v4, v6, opts) -> Promise<{ words: Uint32Array, trees: [...] } | { error }>.
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
    bool ok = f.dims > 0 && f.dims <= ACL_KEY_WORDS && f.widths.size() == static_cast<size_t>(f.dims) && f.lo.size() >= cells &&
              f.hi.size() >= cells && f.prio.size() >= f.count && f.meta.size() >= f.count && f.tag.size() >= f.count;
    for (uint8_t w : f.widths) ok = ok && w <= 32;
    for (const auto& g : f.groups) {
      ok = ok && !g.empty();
      for (int32_t r : g) ok = ok && r >= 0 && static_cast<uint32_t>(r) < f.count;
    }
    if (!ok) throw Napi::TypeError::New(env, "aclCompile: inconsistent record arrays");
  }
  Napi::Object o = info[2].As<Napi::Object>();
  Options& opts = job->opts;
  opts.maxCutBits = std::clamp(o.Get("maxCutBits").As<Napi::Number>().Int32Value(), 1, 16);
  opts.maxBits = std::clamp(o.Get("maxBits").As<Napi::Number>().Int32Value(), 1, opts.maxCutBits);
  opts.binth = std::clamp(o.Get("binth").As<Napi::Number>().Int32Value(), 1, ACL_LEAF_MAX);
  opts.spfac = std::max(o.Get("spfac").As<Napi::Number>().Int32Value(), 0);
  Napi::Value mw = o.Get("maxWords");
  if (mw.IsNumber() && mw.As<Napi::Number>().DoubleValue() >= 1)
    opts.maxWords = std::min(kMaxWords, static_cast<size_t>(mw.As<Napi::Number>().DoubleValue()));
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

void Init(Napi::Env env, Napi::Object exports) { exports.Set("aclCompile", Napi::Function::New<AclCompile>(env, "aclCompile")); }

BPFKIT_REGISTER(Init);

}  // namespace

}  // namespace bpfkit
