// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP with 2 MiB rule sets (up to 2,048 rules). */
#define ACL_BLOB_BYTES (2u << 20)
#include "acl/prog.h"
