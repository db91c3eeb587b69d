// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP with 32 MiB rule sets (up to ~65,000 rules). */
#define ACL_BLOB_BYTES (32u << 20)
#include "acl/prog.h"
