/**
 * `bpfkit status` against attachments this test makes in its own lab namespaces, checked
 * against independent witnesses run inside each namespace: `ip -j link` (XDP program ids)
 * and `bpftool -j net` (clsact filters), plus the ids the library itself reports.
 *
 *   host a: l1.a  AclFirewall (bpfkit acl, pinned)   l2.a  XdpPipeline: [test stage, Decapsulator]
 *   host b: l1.b  foreign XDP program, tcx ingress program, clsact egress filter
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, BpfObject, Decapsulator, XdpPipeline, type TcLink, type XdpLink } from '../../lib/index.js';
import { BPFFS_PATH, Lab, TEST_PIN_PREFIX, type LabHost, type LabLink } from '../../lib/lab/index.js';
import type { StatusReport } from '../../lib/cli/status.js';
import type { Attachment } from '../../lib/cli/status-modules.js';
import { onCpu } from '../helpers/cpu.js';
import { testObject } from '../helpers/objects.js';
import { cli } from './cli-helpers.js';

const PIN = `${BPFFS_PATH}/${TEST_PIN_PREFIX}-cli-status-${process.pid}`;
let lab: Lab;
let a: LabHost;
let b: LabHost;
let l1: LabLink;
let l2: LabLink;
let fw: AclFirewall | undefined;
let pipe: XdpPipeline | undefined;
let decap: Decapsulator | undefined;
const closers: { close(): void }[] = [];
let foreign: XdpLink;
let tcx: TcLink;
let clsact: TcLink;
let stageProgId = 0;

beforeAll(async () => {
  lab = await Lab.create({ name: 'cli-status' });
  a = await lab.host('a');
  b = await lab.host('b');
  const c = await lab.host('c');
  l1 = await lab.link(a, b, { aAddrs: ['198.18.1.1/24', '2001:db8:1::1/64'], bAddrs: ['198.18.1.2/24', '2001:db8:1::2/64'] });
  l2 = await lab.link(a, c, { aAddrs: ['198.18.2.1/24'], bAddrs: ['198.18.2.2/24'] });

  fw = await AclFirewall.attach(l1.a.ifname, { netns: a.netns, pin: PIN, maxRules: 64, rules: [{ id: 'ssh', action: 'deny', proto: 'tcp', dstPort: 22 }] });

  pipe = await XdpPipeline.attach(l2.a.ifname, { netns: a.netns });
  const so = pipe.stageOptions();
  const stageObj = await BpfObject.load(testObject('pipeline_stage'), { maps: so.maps, globals: { ...so.globals, stage_id: 1, verdict: 2 } });
  closers.push(stageObj);
  const stageProg = stageObj.xdpProgram('xdp_stage');
  closers.push(stageProg);
  stageProgId = stageProg.info.id;
  await pipe.add({ name: 'test-stage', program: stageProg });
  decap = await Decapsulator.attach(pipe, { protocols: ['vxlan'] });

  const fObj = await BpfObject.load(testObject('maps'));
  closers.push(fObj);
  foreign = fObj.xdpProgram('xdp_touch').attach(l1.b.ifname, { netns: b.netns });
  const tcObj = await BpfObject.load(testObject('tc_test'));
  closers.push(tcObj);
  tcx = tcObj.tcProgram('tc_mark').attach(l1.b.ifname, { direction: 'ingress', netns: b.netns, kind: 'tcx' });
  clsact = tcObj.tcProgram('tc_mark_alt').attach(l1.b.ifname, { direction: 'egress', netns: b.netns, kind: 'clsact' });
}, 60_000);

afterAll(async () => {
  clsact?.close();
  tcx?.close();
  foreign?.close();
  decap?.close();
  pipe?.close();
  fw?.detach();
  for (const c of closers.reverse()) c.close();
  await lab?.close();
});

async function status(): Promise<StatusReport> {
  const r = await cli(['status', '--json', '--netns', a.netns, '--netns', b.netns]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusReport;
}

function inNs(ns: string, cmd: string[]): unknown {
  return JSON.parse(execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8' }));
}

describe('bpfkit status', () => {
  it('finds every XDP program the witnesses see, on the right interface, with the right id', async () => {
    const r = await status();
    expect(r.namespaces.map((n) => n.name)).toEqual([a.netns, b.netns]);
    expect(r.namespaces.every((n) => n.error === undefined && n.interfaces >= 2)).toBe(true);
    for (const host of [a, b]) {
      const links = inNs(host.netns, ['ip', '-j', 'link', 'show']) as { ifname: string; ifindex: number; xdp?: { prog?: { id: number; name: string } } }[];
      const seen = links.filter((l) => l.xdp?.prog).map((l) => ({ ifname: l.ifname, ifindex: l.ifindex, id: l.xdp!.prog!.id, name: l.xdp!.prog!.name }));
      const ours = r
        .attachments!.filter((x) => x.netns === host.netns && x.hook === 'xdp')
        .map((x) => ({ ifname: x.ifname, ifindex: x.ifindex, id: x.program.id, name: x.program.name }));
      expect(seen.length).toBeGreaterThan(0);
      expect(ours).toEqual(seen);
    }
  });

  it('marks bpfkit programs by module and others as foreign', async () => {
    const r = await status();
    const at = (host: LabHost, ifname: string, hook: string): Attachment => {
      const x = r.attachments!.find((y) => y.netns === host.netns && y.ifname === ifname && y.hook === hook);
      expect(x, `${host.netns} ${ifname} ${hook}`).toBeDefined();
      return x!;
    };
    const acl = at(a, l1.a.ifname, 'xdp');
    expect(acl).toMatchObject({ owner: 'bpfkit', module: 'acl', mode: 'native', program: { id: fw!.program.info.id } });
    expect(acl.pins).toEqual(expect.arrayContaining([`${PIN}/prog`, `${PIN}/link_${l1.a.ifindex}`]));
    expect(acl.counters).toMatchObject({ defaultAllow: expect.any(Number), defaultDeny: 0 });

    const root = at(a, l2.a.ifname, 'xdp');
    expect(root).toMatchObject({
      owner: 'bpfkit',
      module: 'pipeline',
      program: { name: 'xdp_pipeline' },
      counters: { packets: expect.any(Number), empty: expect.any(Number) },
    });
    expect(root.stages).toEqual([
      { position: 0, program: expect.objectContaining({ id: stageProgId, name: 'xdp_stage' }), owner: 'foreign', module: null },
      { position: 1, program: expect.objectContaining({ id: decap!.program.info.id, name: 'xdp_decap' }), owner: 'bpfkit', module: 'decap' },
    ]);

    expect(at(b, l1.b.ifname, 'xdp')).toMatchObject({ owner: 'foreign', module: null, program: { id: foreign.info.progId, name: 'xdp_touch' }, pins: [] });
    expect(at(b, l1.b.ifname, 'tc-ingress')).toMatchObject({
      mode: 'tcx',
      owner: 'foreign',
      linkId: tcx.info.id,
      program: { id: tcx.info.progId, name: 'tc_mark' },
    });
    expect(at(b, l1.b.ifname, 'tc-egress')).toMatchObject({ mode: 'clsact', owner: 'foreign', program: { id: clsact.info.progId, name: 'tc_mark_alt' } });
    // bpftool, in the namespace, sees the same clsact filter
    const net = inNs(b.netns, ['bpftool', '-j', 'net']) as { tc: { ifindex: number; kind: string; id: number }[] }[];
    expect(net[0]!.tc).toContainEqual(expect.objectContaining({ ifindex: l1.b.ifindex, kind: 'clsact/egress', id: clsact.info.progId }));
    // and the pin directory is listed, down to the link that attaches the firewall
    expect(r.pins).toContainEqual(expect.objectContaining({ path: `${PIN}/link_${l1.a.ifindex}`, kind: 'link', programId: fw!.program.info.id }));
  });

  it('the text page says the same', async () => {
    const r = await cli(['status', '--netns', a.netns, '--netns', b.netns]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^privileges {2}root$/m);
    const line = (re: RegExp): void => expect(r.stdout).toMatch(re);
    line(new RegExp(`^    ${l1.a.ifname} \\(${l1.a.ifindex}\\)  xdp native  prog ${fw!.program.info.id} xdp_acl\\S*  \\[bpfkit acl\\]$`, 'm'));
    line(new RegExp(`^      stages: 0:xdp_stage\\(${stageProgId}\\) -> 1:xdp_decap\\(${decap!.program.info.id}\\)$`, 'm'));
    line(new RegExp(`^    ${l1.b.ifname} \\(${l1.b.ifindex}\\)  xdp native  prog ${foreign.info.progId} xdp_touch  \\[foreign\\]$`, 'm'));
    line(new RegExp(`^    ${l1.b.ifname} \\(${l1.b.ifindex}\\)  tc-egress clsact  prog ${clsact.info.progId} tc_mark_alt  \\[foreign\\]$`, 'm'));
    line(new RegExp(`^      pinned: ${PIN}/prog$`, 'm'));
  });

  it('without --netns it looks at this namespace and every named one', async () => {
    const r = await cli(['status', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as StatusReport;
    const names = doc.namespaces.map((n) => n.name);
    expect(names[0]).toBeNull();
    expect(names).toEqual(expect.arrayContaining([a.netns, b.netns]));
    expect(doc.attachments!.find((x) => x.netns === a.netns && x.ifname === l1.a.ifname)).toMatchObject({ module: 'acl' });
  });

  it('a detached program is gone from the next report', async () => {
    const id = foreign.info.progId;
    foreign.close();
    const r = await status();
    expect(r.attachments!.find((x) => x.program.id === id)).toBeUndefined();
    expect(r.attachments!.find((x) => x.netns === b.netns && x.hook === 'xdp')).toBeUndefined();
  });

  it("a Decapsulator attached alone: its counters summed over every CPU's region", async () => {
    const l3 = await lab.link(a, b);
    const d = await Decapsulator.attach(l3.a.ifname, { netns: a.netns, protocols: ['vxlan'] });
    try {
      // the scapy fixture's VXLAN/IPv4 frame, sent to this interface's MAC
      const fx = JSON.parse(readFileSync(join(__dirname, '../fixtures/decap/fixtures.json'), 'utf8')) as { cases: { name: string; in: string }[] };
      const f = Buffer.from(fx.cases.find((c) => c.name === 'vxlan4')!.in, 'hex');
      Buffer.from(l3.a.mac.split(':').map((x) => parseInt(x, 16))).copy(f, 0);
      for (const cpu of cpus().length > 1 ? [0, 1] : [0]) {
        await onCpu(cpu, async () => {
          for (let i = 0; i < 2 + cpu; i++) expect((await d.testRun(f)).action).toBe('pass');
        });
      }
      const want = d.stats().protocols.vxlan.ipv4.packets;
      expect(want).toBe(cpus().length > 1 ? 5n : 2n);
      const r = await status();
      const x = r.attachments!.find((y) => y.netns === a.netns && y.ifname === l3.a.ifname && y.hook === 'xdp');
      expect(x).toMatchObject({ owner: 'bpfkit', module: 'decap', program: { id: d.program.info.id }, counters: { decapsulated: Number(want), passed: 0 } });
    } finally {
      d.close();
    }
  });
});
