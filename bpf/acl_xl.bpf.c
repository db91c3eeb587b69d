// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP with 64 MiB rule sets (100,000 rules and more). */
#define ACL_BLOB_BYTES ACL_MAX_BLOB_BYTES /* bpf/include/acl_blob.h */
#include "acl/prog.h"
