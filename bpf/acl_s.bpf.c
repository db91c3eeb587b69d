// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP with 1 MiB rule sets (a few thousand rules, fastest swaps). */
#define ACL_BLOB_BYTES (1u << 20)
#include "acl/prog.h"
