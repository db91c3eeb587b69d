/**
 * The ACL tree compiler in the addon (addon/acl_compile.cc, addon/acl/), typed: the one
 * piece of module-specific native code, reached through here so that lib/modules never
 * imports the addon binding itself (an ESLint rule holds that line).
 */
import { native, type NativeAclCompileOptions, type NativeAclCompileResult, type NativeAclFamily } from './native.js';

export type { NativeAclCompileOptions, NativeAclCompileResult, NativeAclFamily };

/** Builds the decision trees of both families off the JS thread (see lib/modules/acl/classifier.ts). */
export function aclCompile(v4: NativeAclFamily, v6: NativeAclFamily, opts: NativeAclCompileOptions): Promise<NativeAclCompileResult> {
  return native().aclCompile(v4, v6, opts);
}
