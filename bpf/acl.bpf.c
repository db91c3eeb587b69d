// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP (see bpf/acl/prog.h) with 8 MiB rule sets (up to ~16,000
 * rules). The same program is built for other rule-set sizes: acl_s (1 MiB), acl_l
 * (32 MiB), acl_xl (64 MiB); lib/modules/acl picks one from `maxRules`, since every
 * rule-set swap writes a whole blob. */
#define ACL_BLOB_BYTES (8u << 20)
#include "acl/prog.h"
