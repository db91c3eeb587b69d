// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP (see bpf/include/acl_prog.h), 16 MiB rule sets: up to tens of
 * thousands of rules. bpf/acl_s.bpf.c (1 MiB) and bpf/acl_xl.bpf.c (64 MiB) are the same
 * program with other rule-set sizes; lib/modules/acl picks one from `maxRules`. */
#define ACL_BLOB_BYTES (16u << 20)
#include "acl_prog.h"
