// The AclFirewall rule-set compiler's tree builder (see tree.h): one node at a time, depth
// first, choosing each node's cut from the rules that reach it.
#include "tree.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace bpfkit::acl {

uint32_t TreeBuilder::Leaf(uint32_t off, uint32_t n) {
  if (n > ACL_LEAF_MAX) {
    if (noSpill) throw TreeOver{};
    // the rules after the first ACL_LEAF_MAX go to a further tree (job.cc)
    spilled.insert(spilled.end(), pool_.begin() + off + ACL_LEAF_MAX, pool_.begin() + off + n);
    n = ACL_LEAF_MAX;
  }
  // no record, or one: the pointer says so and the walk loads no leaf (acl_blob.h)
  if (n == 0) return ACL_PTR_EMPTY;
  if (n == 1) {
    leaves++;
    maxLeaf = std::max(maxLeaf, n);
    return ACL_PTR_REC | recOff_[pool_[off]];
  }
  std::vector<uint32_t>& out = *out_;
  // identical leaves are shared: FNV-1a over the record indices, checked word by word
  uint32_t h = 0x811c9dc5u ^ n;
  for (uint32_t i = 0; i < n; i++) h = (h ^ static_cast<uint32_t>(pool_[off + i])) * 0x01000193u;
  const uint32_t found = leafCache_.Find(h, [&](uint32_t at) {
    if ((out[at] & 0xffff) != n) return false;
    for (uint32_t i = 0; i < n; i++)
      if (out[at + 1 + i] != recOff_[pool_[off + i]]) return false;
    return true;
  });
  if (found != LeafTable::kNone) return found;
  uint32_t at = Reserve(1 + n);
  out[at] = ACL_LEAF | n;
  for (uint32_t i = 0; i < n; i++) out[at + 1 + i] = recOff_[pool_[off + i]];
  leafCache_.Add(h, at);
  leaves++;
  maxLeaf = std::max(maxLeaf, n);
  return at;
}

// A dimension where rule r does not yet cover the region, or -1.
int TreeBuilder::TowardsFirst(int32_t r, const Region& reg) const {
  for (int d = 0; d < D_; d++) {
    unsigned free = reg.free[d];
    uint64_t b = reg.base[d];
    if (free > 0 && (Lo(r, d) > b || Hi(r, d) < b + Pow2(free) - 1)) return d;
  }
  return -1;
}

// The least words a node's subtree takes: a leaf of its first ACL_LEAF_MAX rules.
static uint64_t LeafWords(uint32_t n) { return 1 + std::min<uint32_t>(n, ACL_LEAF_MAX); }

uint32_t TreeBuilder::Node(uint32_t off, uint32_t n, Region& reg, uint32_t depth, uint64_t budget) {
  for (uint32_t i = 0; i < n; i++) {
    if (Covers(pool_[off + i], reg)) {
      n = i + 1;  // later rules can never be the first match here
      break;
    }
  }
  maxDepth = std::max(maxDepth, depth);
  if (n <= static_cast<uint32_t>(o_.binth) || depth >= ACL_MAX_DEPTH - 1) return Leaf(off, n);
  int d = -1;
  unsigned bits = 0;
  if (ChooseCut(off, n, reg, budget)) {
    d = cutD_;
    bits = cutBits_;
  }
  if (d < 0 || cutMax_ == n) {
    // Nested rules overlapping at one point: no cut separates them. Keep them in one
    // leaf if it is short enough; else narrow the region towards the first rule until
    // it covers the region (and the rules after it drop out).
    if (n <= ACL_LEAF_MAX) return Leaf(off, n);
    d = TowardsFirst(pool_[off], reg);
    if (d < 0) return Leaf(off, n);
    bits = std::min<unsigned>(reg.free[d], 8);
  }
  // the widest cut up to `bits` whose children can at least be leaves within the budget;
  // none: a leaf (whose rules beyond ACL_LEAF_MAX go to the next tree)
  const size_t saved = pool_.size();
  const uint32_t segAt = static_cast<uint32_t>(saved);
  for (;; bits--) {
    if (bits == 0) return Leaf(off, n);
    if (Segment(off, n, d, bits, reg) <= budget) break;
    pool_.resize(saved);
  }
  const uint32_t nseg = static_cast<uint32_t>(cuts_.size());
  const unsigned free = reg.free[d];
  const unsigned shift = free - bits;
  const uint64_t base = reg.base[d];
  const uint32_t nc = 1u << bits;
  const uint64_t mask = Pow2(shift) - 1;
  const uint32_t at = Reserve(1 + nc);
  std::vector<uint32_t>& out = *out_;  // the vector (children grow it: index it afresh)
  out[at] = static_cast<uint32_t>(d) | (shift << 8) | (bits << 16);
  nodes++;
  // The children's budgets: each its leaf's words, and what is left of the node's budget
  // shared by their rules; a child's unused words go to the children after it.
  uint64_t left = budget - (1 + nc), minLeft = 0, rulesLeft = 0;
  for (uint32_t j = 0; j < nseg; j++) {
    const uint32_t len = static_cast<uint32_t>(pool_[segAt + 2 * nseg + j]);
    minLeft += LeafWords(len);
    rulesLeft += len;
  }
  auto share = [&](uint32_t len) {
    if (!bounded) return budget;
    uint64_t extra = rulesLeft ? (left - minLeft) * len / rulesLeft : 0;
    return LeafWords(len) + extra;
  };
  // children: the region is narrowed in place and restored (depth-first build)
  reg.free[d] = static_cast<uint8_t>(shift);
  if (split && depth == 0 && n >= kSplitMin && nseg >= 2) {
    std::vector<uint64_t> budgets(nseg);
    for (uint32_t j = 0; j < nseg; j++) budgets[j] = share(static_cast<uint32_t>(pool_[segAt + 2 * nseg + j]));
    Segments(at, nc, segAt, nseg, d, base, mask, reg, depth, budgets);
  } else {
    for (uint32_t j = 0; j < nseg; j++) {
      uint32_t c0 = static_cast<uint32_t>(pool_[segAt + j]);
      uint32_t c1 = j + 1 < nseg ? static_cast<uint32_t>(pool_[segAt + j + 1]) : nc;
      const uint32_t len = static_cast<uint32_t>(pool_[segAt + 2 * nseg + j]);
      const uint64_t b = share(len);
      reg.base[d] = base + uint64_t{c0} * (mask + 1);
      const size_t before = out.size();
      uint32_t child = Node(static_cast<uint32_t>(pool_[segAt + nseg + j]), len, reg, depth + 1, b);
      std::fill(out.begin() + at + 1 + c0, out.begin() + at + 1 + c1, child);
      if (bounded) {
        left -= out.size() - before;
        minLeft -= LeafWords(len);
        rulesLeft -= len;
      }
    }
  }
  reg.base[d] = base;
  reg.free[d] = static_cast<uint8_t>(free);
  pool_.resize(saved);
  return at;
}

// Splits the node's rules by a cut of `bits` bits of dimension d: the segments (runs of
// children no rule starts or ends inside, so every rule present covers each of them whole
// and they share one subtree) go on the pool: their first children, list offsets and list
// lengths (cuts_.size() each), then the lists. Returns the least words the node takes
// with that cut (itself and a leaf per segment).
uint64_t TreeBuilder::Segment(uint32_t off, uint32_t n, int d, unsigned bits, const Region& reg) {
  const unsigned free = reg.free[d];
  const unsigned shift = free - bits;
  const uint64_t base = reg.base[d];
  const uint64_t top = base + Pow2(free) - 1;
  const uint32_t nc = 1u << bits;
  const uint64_t mask = Pow2(shift) - 1;
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
  uint64_t need = 1 + uint64_t{nc};
  for (uint32_t j = 0; j < nseg; j++) need += LeafWords(count_[j]);
  const size_t listsAt = pool_.size();
  pool_.resize(listsAt + total);
  for (uint32_t j = 0, at = static_cast<uint32_t>(listsAt); j < nseg; j++) {
    pool_[segAt + nseg + j] = static_cast<int32_t>(at);
    pool_[segAt + 2 * nseg + j] = 0;
    at += count_[j];
  }
  for (uint32_t i = 0; i < n; i++) {
    int32_t r = pool_[off + i];
    for (uint32_t j = spanA_[i]; j <= spanB_[i]; j++)
      pool_[pool_[segAt + nseg + j] + pool_[segAt + 2 * nseg + j]++] = r;
  }
  return need;
}

// Best (dimension, bits) into cutD_/cutBits_/cutMax_: the cut that leaves the smallest
// largest child, with the memory it costs (distinct children, estimated from the rule
// boundaries) within spfac x the node's rules and the node's budget. False when no cut
// separates the rules.
bool TreeBuilder::ChooseCut(uint32_t off, uint32_t n, const Region& reg, uint64_t nodeBudget) {
  const uint64_t budget = std::min(uint64_t(o_.spfac) * n + 256, nodeBudget);
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
    const unsigned maxB = std::min<unsigned>(free, n > 4096  ? o_.maxCutBits
                                                   : n > 256 ? std::max(12, o_.maxBits)
                                                   : n > 32  ? o_.maxBits
                                                             : std::min(o_.maxBits, 6));
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
void TreeBuilder::EvalCut(uint32_t m, uint32_t full, unsigned free, unsigned bits) {
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

}  // namespace bpfkit::acl
