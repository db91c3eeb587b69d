// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP (see bpf/acl/prog.h) with 16 MiB rule sets (up to 16,384 rules
 * of any shape, ACL_RULE_BYTES each). The same program is built for other rule-set
 * sizes: acl_s (2 MiB), acl_l (64 MiB), acl_xl (256 MiB); lib/modules/acl picks one from
 * `maxRules`. */
#define ACL_BLOB_BYTES (16u << 20)
#include "acl/prog.h"
