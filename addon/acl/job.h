// One aclCompile call: both families' records and trees into blob words (job.cc), built
// on the libuv pool; the N-API glue (addon/acl_compile.cc) fills it and reads it back.
#ifndef BPFKIT_ACL_JOB_H
#define BPFKIT_ACL_JOB_H

#include <cstdint>
#include <vector>

#include "tree.h"

namespace bpfkit::acl {

struct TreeStat {
  int family;
  uint32_t records, nodes, leaves, maxDepth, maxLeaf, words;
  uint32_t root, prio;  // root node's word offset, best priority in the tree (for the header)
};

struct Job {
  Family fam[2];
  Options opts;
  // ACL_HDR_WORDS words left zero (the header is written by lib/modules/acl/layout.ts
  // writeBlobHeader, from `trees`), then each family's records and trees
  std::vector<uint32_t> words;
  std::vector<TreeStat> trees;
  bool tooComplex = false;
  bool tooBig = false;
  TooComplex error{};

  void Run();

 private:
  void Partitions(const Family& f, const std::vector<uint32_t>& recOff);
  bool OneTree(const Family& f, const std::vector<uint32_t>& recOff, size_t at, size_t firstTree, uint64_t limit);
};

}  // namespace bpfkit::acl

#endif
