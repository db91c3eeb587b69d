// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* AclFirewall at XDP with 256 MiB rule sets (up to 200,000 rules). */
#define ACL_BLOB_BYTES ACL_MAX_BLOB_BYTES /* bpf/include/acl_blob.h */
#include "acl/prog.h"
