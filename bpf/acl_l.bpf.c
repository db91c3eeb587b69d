// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP with 64 MiB rule sets (up to 65,536 rules). */
#define ACL_BLOB_BYTES (64u << 20)
#include "acl/prog.h"
