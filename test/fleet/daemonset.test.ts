/**
 * deploy/kubernetes/daemonset.yaml, checked without a cluster:
 *
 * 1. Shape: each document is type-checked by the TypeScript compiler against
 *    kubernetes-types (generated from the Kubernetes OpenAPI spec): unknown fields
 *    (excess properties), missing required fields and wrong types are errors, as
 *    `kubectl apply --validate=strict` would report them. A manifest with a typo must fail.
 * 2. What the API server checks beyond types: selector matches the template, mounts name
 *    volumes, enums (hostPath type, mountPropagation, update strategy), the RollingUpdate
 *    rule (maxUnavailable and maxSurge not both 0), $(VAR) references, DNS-1123 names.
 * 3. What bpfkit needs on a node: host network, the four capabilities and no others, the
 *    host's bpffs and /run/netns (propagating), a pinned firewall kept over SIGTERM, and
 *    rules the firewall accepts.
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import ts from 'typescript';
import { normalizeRule } from '../../lib/modules/acl/rules.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MANIFEST = join(ROOT, 'deploy', 'kubernetes', 'daemonset.yaml');

type Obj = Record<string, any>;

function documents(text: string): Obj[] {
  const docs = parseAllDocuments(text);
  const out: Obj[] = [];
  for (const d of docs) {
    expect(d.errors, 'YAML errors').toEqual([]);
    expect(d.warnings, 'YAML warnings').toEqual([]);
    out.push(d.toJS() as Obj);
  }
  return out;
}

const TYPES: Record<string, { module: string; type: string }> = {
  'apps/v1/DaemonSet': { module: 'kubernetes-types/apps/v1', type: 'DaemonSet' },
  'v1/ConfigMap': { module: 'kubernetes-types/core/v1', type: 'ConfigMap' },
};

/** TypeScript diagnostics of `const doc: <Kind> = <doc>` for each document (empty: all conform). */
function typeCheck(docs: Obj[]): string[] {
  // beside node_modules, so that 'kubernetes-types' resolves as from any file of the repository
  const base = join(ROOT, 'node_modules', '.cache');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'bpfkit-manifest-'));
  try {
    const lines: string[] = [];
    docs.forEach((doc, i) => {
      const t = TYPES[`${doc.apiVersion}/${doc.kind}`];
      if (!t) {
        lines.push(`// document ${i}: no schema for ${doc.apiVersion} ${doc.kind}\nconst unknown${i}: never = 0;`);
        return;
      }
      lines.push(`import type { ${t.type} as T${i} } from '${t.module}';\nexport const doc${i}: T${i} = ${JSON.stringify(doc, null, 2)};`);
    });
    const file = join(dir, 'manifest.ts');
    writeFileSync(file, lines.join('\n'));
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      types: [],
      skipLibCheck: true,
    });
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUANTITY = /^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/;
const HOST_PATH_TYPES = ['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'];
const PROPAGATION = ['None', 'HostToContainer', 'Bidirectional'];
/** Linux capabilities by their Kubernetes names (no CAP_ prefix). */
const CAPABILITIES = new Set([
  'AUDIT_CONTROL',
  'AUDIT_READ',
  'AUDIT_WRITE',
  'BLOCK_SUSPEND',
  'BPF',
  'CHECKPOINT_RESTORE',
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'IPC_LOCK',
  'IPC_OWNER',
  'KILL',
  'LEASE',
  'LINUX_IMMUTABLE',
  'MAC_ADMIN',
  'MAC_OVERRIDE',
  'MKNOD',
  'NET_ADMIN',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_RAW',
  'PERFMON',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYSLOG',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_CHROOT',
  'SYS_MODULE',
  'SYS_NICE',
  'SYS_PACCT',
  'SYS_PTRACE',
  'SYS_RAWIO',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'WAKE_ALARM',
  'ALL',
]);

/** The checks the API server makes beyond the types; returns what is wrong. */
function apiServerChecks(ds: Obj): string[] {
  const bad: string[] = [];
  const spec = ds.spec ?? {};
  const tpl = spec.template ?? {};
  const labels: Obj = tpl.metadata?.labels ?? {};
  for (const [k, v] of Object.entries<string>(spec.selector?.matchLabels ?? {})) {
    if (labels[k] !== v) bad.push(`selector ${k}=${v} does not match the template's labels`);
  }
  if (!DNS1123_LABEL.test(ds.metadata?.name ?? '')) bad.push('metadata.name is not a DNS-1123 label');
  const st = spec.updateStrategy ?? {};
  if (!['RollingUpdate', 'OnDelete', undefined].includes(st.type)) bad.push(`updateStrategy.type ${st.type}`);
  if (st.type === 'RollingUpdate') {
    const n = (x: unknown) => (typeof x === 'string' ? Number.parseInt(x, 10) : Number(x ?? 0));
    const { maxUnavailable = 1, maxSurge = 0 } = st.rollingUpdate ?? {};
    if (n(maxUnavailable) === 0 && n(maxSurge) === 0) bad.push('rollingUpdate: maxUnavailable and maxSurge are both 0');
  }
  const pod = tpl.spec ?? {};
  const volumes = new Map<string, Obj>((pod.volumes ?? []).map((v: Obj) => [v.name, v]));
  for (const v of volumes.values()) {
    if (!DNS1123_LABEL.test(v.name)) bad.push(`volume name ${v.name}`);
    if (v.hostPath && !HOST_PATH_TYPES.includes(v.hostPath.type ?? '')) bad.push(`volume ${v.name}: hostPath.type ${v.hostPath.type}`);
  }
  for (const c of pod.containers ?? []) {
    if (!DNS1123_LABEL.test(c.name)) bad.push(`container name ${c.name}`);
    for (const m of c.volumeMounts ?? []) {
      if (!volumes.has(m.name)) bad.push(`container ${c.name}: mount of unknown volume ${m.name}`);
      if (m.mountPropagation !== undefined && !PROPAGATION.includes(m.mountPropagation)) bad.push(`mount ${m.name}: mountPropagation ${m.mountPropagation}`);
      if (m.mountPropagation === 'Bidirectional' && c.securityContext?.privileged !== true)
        bad.push(`mount ${m.name}: Bidirectional needs a privileged container`);
    }
    const env = new Set((c.env ?? []).map((e: Obj) => e.name));
    for (const a of [...(c.command ?? []), ...(c.args ?? [])]) {
      for (const [, name] of String(a).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) if (!env.has(name)) bad.push(`$(${name}) is not in env`);
    }
    const caps = c.securityContext?.capabilities ?? {};
    for (const cap of [...(caps.add ?? []), ...(caps.drop ?? [])])
      if (!CAPABILITIES.has(cap)) bad.push(`capability ${cap} (Kubernetes names have no CAP_ prefix)`);
    for (const kind of ['requests', 'limits']) {
      for (const [k, v] of Object.entries(c.resources?.[kind] ?? {})) if (!QUANTITY.test(String(v))) bad.push(`resources.${kind}.${k}: ${String(v)}`);
    }
  }
  if (pod.hostNetwork && pod.dnsPolicy !== 'ClusterFirstWithHostNet')
    bad.push('hostNetwork without dnsPolicy ClusterFirstWithHostNet resolves no cluster names');
  return bad;
}

const text = readFileSync(MANIFEST, 'utf8');
const docs = documents(text);
const ds = docs.find((d) => d.kind === 'DaemonSet')!;
const cm = docs.find((d) => d.kind === 'ConfigMap')!;
const container = ds.spec.template.spec.containers[0] as Obj;

describe('deploy/kubernetes/daemonset.yaml', () => {
  it('is a ConfigMap and an apps/v1 DaemonSet that conform to the Kubernetes types', () => {
    expect(docs.map((d) => `${d.apiVersion} ${d.kind}`)).toEqual(['v1 ConfigMap', 'apps/v1 DaemonSet']);
    expect(typeCheck(docs)).toEqual([]);
  }, 60_000);

  it('the shape check fails on a typo, a missing required field and a wrong type', () => {
    const typo = structuredClone(ds);
    typo.spec.template.spec.hostNetwrok = true;
    const missing = structuredClone(ds);
    delete missing.spec.selector;
    const wrong = structuredClone(ds);
    wrong.spec.template.spec.containers[0].securityContext.capabilities.add = 'BPF';
    const [a, b, c] = [typo, missing, wrong].map((d) => typeCheck([d]));
    expect(a.join('\n')).toMatch(/hostNetwrok/);
    expect(b.join('\n')).toMatch(/selector/);
    expect(c.join('\n')).toMatch(/not assignable/);
  }, 60_000);

  it("passes the API server's own checks (and they catch what they should)", () => {
    expect(apiServerChecks(ds)).toEqual([]);
    const broken = structuredClone(ds);
    broken.spec.selector.matchLabels.app = 'other';
    broken.spec.updateStrategy.rollingUpdate = { maxUnavailable: 0, maxSurge: 0 };
    broken.spec.template.spec.containers[0].securityContext.capabilities.add.push('CAP_BPF');
    broken.spec.template.spec.containers[0].volumeMounts[0].name = 'nope';
    broken.spec.template.spec.containers[0].args.push('--x=$(UNDEFINED)');
    expect(apiServerChecks(broken)).toHaveLength(5);
  });

  it('gives bpfkit what it needs on a node, and no more', () => {
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    const sc = container.securityContext;
    expect(sc.privileged).toBe(false);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.runAsUser).toBe(0);
    expect(sc.capabilities.drop).toEqual(['ALL']);
    expect([...sc.capabilities.add].sort()).toEqual(['BPF', 'NET_ADMIN', 'PERFMON', 'SYS_ADMIN']);
    // the host's bpffs and named namespaces, with new mounts propagating into the pod
    const vol = (name: string) => pod.volumes.find((v: Obj) => v.name === name);
    const mount = (path: string) => container.volumeMounts.find((m: Obj) => m.mountPath === path);
    expect(vol(mount('/sys/fs/bpf').name).hostPath).toEqual({ path: '/sys/fs/bpf', type: 'Directory' });
    expect(mount('/sys/fs/bpf').mountPropagation).toBe('HostToContainer');
    expect(vol(mount('/run/netns').name).hostPath.path).toBe('/run/netns');
    expect(mount('/run/netns').mountPropagation).toBe('HostToContainer');
    // one node at a time; the pinned firewall outlives its pod and the next one adopts it
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    expect(container.command).toEqual(['bpfkit']);
    const args: string[] = container.args;
    expect(args[0]).toBe('firewall');
    expect(args).toContain('--keep');
    expect(args.find((a) => a.startsWith('--pin='))).toMatch(/^--pin=\/sys\/fs\/bpf\/bpfkit\/firewall-\$\(BPFKIT_IFACE\)$/);
    expect(args).toContain('--rules=/etc/bpfkit/rules.yaml');
    expect(mount('/etc/bpfkit').name).toBe('rules');
    expect(vol('rules').configMap.name).toBe(cm.metadata.name);
  });

  it('the ConfigMap holds rules the firewall accepts', () => {
    const rules = documents(cm.data['rules.yaml'])[0] as unknown[];
    expect(rules.length).toBeGreaterThan(0);
    rules.forEach((r, i) => expect(() => normalizeRule(r, i)).not.toThrow());
  });
});
