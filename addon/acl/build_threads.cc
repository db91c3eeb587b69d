// The AclFirewall rule-set compiler's threads (see tree.h): a big tree's root has the
// subtrees of its segments built on up to four threads, into words of their own that are
// appended in segment order and relocated, so the words never depend on the threads.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "tree.h"

namespace bpfkit::acl {

namespace {

// One segment's subtree of a split root: its words (offsets from 0), or its error.
struct Seg {
  std::vector<uint32_t> words;
  uint32_t child = 0;
  std::exception_ptr error;
  bool tooComplex = false;
  size_t wordsAtError = 0;
};

}  // namespace

// Builds the subtrees of the node at `at` (its segments are on the pool at segAt) on
// this thread and up to three more, each taking the next segment not yet taken; then
// appends them in segment order, node pointers moved by where they land. Errors are
// those of building the segments one after the other here: the first segment's that
// fails, "too big" first when the words before its error already outgrow the limit.
void TreeBuilder::Segments(uint32_t at, uint32_t nc, uint32_t segAt, uint32_t nseg, int d, uint64_t base, uint64_t mask,
                           const Region& reg, uint32_t depth, const std::vector<uint64_t>& budgets) {
  std::vector<Seg> segs(nseg);
  std::atomic<uint32_t> next{0};
  std::atomic<uint32_t> firstFailed{nseg};  // segments after it cannot change the outcome
  const size_t limit = limitBase + out_->size();
  std::atomic<size_t> total{limit};  // the words so far: these, then every segment's
  struct Worker {
    uint32_t nodes = 0, leaves = 0, maxDepth = 0, maxLeaf = 0;
    std::vector<int32_t> spilled;
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
          sg.words.assign(kOwnWordsPad, 0);
          tb.out_ = &sg.words;
          tb.limitBase = limit - kOwnWordsPad;
          tb.treeEnd = treeEnd;
          tb.bounded = bounded;
          tb.sharedWords = &total;
          tb.noSpill = noSpill;
          tb.leafCache_.Clear();
          const uint32_t lo = static_cast<uint32_t>(pool_[segAt + nseg + j]),
                         len = static_cast<uint32_t>(pool_[segAt + 2 * nseg + j]);
          tb.pool_.assign(pool_.begin() + lo, pool_.begin() + lo + len);
          r.base[d] = base + uint64_t{static_cast<uint32_t>(pool_[segAt + j])} * (mask + 1);
          sg.child = tb.Node(0, len, r, depth + 1, budgets[j]);
        } catch (...) {
          sg.error = std::current_exception();
          try {
            std::rethrow_exception(sg.error);
          } catch (const TooComplex&) {
            sg.tooComplex = true;
          } catch (...) {
          }
          sg.wordsAtError = sg.words.size() - kOwnWordsPad;
          for (uint32_t f = firstFailed.load(); j < f && !firstFailed.compare_exchange_weak(f, j);) {
          }
          r = reg;  // a failed subtree leaves the region narrowed
        }
      }
      w.nodes = tb.nodes;
      w.leaves = tb.leaves;
      w.maxDepth = tb.maxDepth;
      w.maxLeaf = tb.maxLeaf;
      w.spilled = std::move(tb.spilled);
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
    if (limitBase + landAt + sg.words.size() - kOwnWordsPad > o_.maxWords) throw TooBig{};
    const uint32_t shift = static_cast<uint32_t>(landAt);
    std::vector<uint32_t>& w = sg.words;
    RelocateTree(w, shift);
    out.insert(out.end(), w.begin() + kOwnWordsPad, w.end());
    std::vector<uint32_t>().swap(w);
    const uint32_t c0 = static_cast<uint32_t>(pool_[segAt + j]);
    const uint32_t c1 = j + 1 < nseg ? static_cast<uint32_t>(pool_[segAt + j + 1]) : nc;
    std::fill(out.begin() + at + 1 + c0, out.begin() + at + 1 + c1, Relocate(sg.child, shift));
    if (limitBase + out.size() > treeEnd) throw TreeOver{};
  }
  for (const Worker& w : workers) {
    nodes += w.nodes;
    leaves += w.leaves;
    maxDepth = std::max(maxDepth, w.maxDepth);
    maxLeaf = std::max(maxLeaf, w.maxLeaf);
    spilled.insert(spilled.end(), w.spilled.begin(), w.spilled.end());
  }
}

}  // namespace bpfkit::acl
