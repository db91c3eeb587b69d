/**
 * XdpPipeline on the real kernel: test stages (test/bpf/pipeline_stage.bpf.c) append
 * their id to a per-packet trail, and the stage that ends a walk counts the trail. A
 * trail that is not one of the chains installed (a prefix, a mix) would be a packet that
 * met a half-built chain.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall, BpfObject, Decapsulator, u32, u64, XdpPipeline, type BpfMap, type PipelineStage } from '../../lib/index.js';
import { Lab, type LabHost } from '../../lib/lab/index.js';
import { testObject } from '../helpers/objects.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const frame = Buffer.concat([Buffer.from('ffffffffffff020000000001', 'hex'), Buffer.from('88b5', 'hex'), Buffer.alloc(50)]);

interface TestStage extends PipelineStage {
  obj: BpfObject;
}
const opened: { close(): void }[] = [];

/** Loads test stage `id` for `pipe`; every stage of a pipeline shares one `trails` map. */
async function stage(pipe: XdpPipeline, id: number, opts: { verdict?: number; trails?: BpfMap<number, bigint> } = {}): Promise<TestStage> {
  const so = pipe.stageOptions();
  const obj = await BpfObject.load(testObject('pipeline_stage'), {
    maps: { ...so.maps, ...(opts.trails ? { trails: { reuse: opts.trails } } : {}) },
    globals: { ...so.globals, stage_id: id, verdict: opts.verdict ?? XDP_PASS },
  });
  const program = obj.xdpProgram('xdp_stage');
  opened.push(program, obj);
  return { name: `s${id}`, program, obj };
}

function trailsOf(m: BpfMap<number, bigint>): Map<number, bigint> {
  return new Map([...m.entries()]);
}

afterAll(() => {
  for (const o of opened.reverse()) o.close();
});

describe('XdpPipeline (testRun)', () => {
  let pipe: XdpPipeline;
  let a: TestStage;
  let b: TestStage;
  let c: TestStage;
  let trails: BpfMap<number, bigint>;
  beforeAll(async () => {
    pipe = await XdpPipeline.load();
    opened.push(pipe);
    a = await stage(pipe, 1);
    trails = a.obj.map('trails', { key: u32, value: u64 });
    opened.push(trails);
    b = await stage(pipe, 2, { trails });
    c = await stage(pipe, 3, { trails, verdict: XDP_DROP });
  });

  it('an empty pipeline passes and counts it', async () => {
    expect((await pipe.testRun(frame)).action).toBe('pass');
    expect(pipe.stats()).toMatchObject({ packets: 1n, empty: 1n, stages: [] });
  });

  it('stages run in order; PASS continues, another verdict ends the walk there', async () => {
    await pipe.setStages([a, b]);
    expect(pipe.stages).toEqual(['s1', 's2']);
    expect((await pipe.testRun(frame)).action).toBe('pass');
    expect(trailsOf(trails).get(0x12)).toBe(1n);

    await pipe.add(c, { before: 's2' }); // a, c (drops), b
    expect(pipe.stages).toEqual(['s1', 's3', 's2']);
    expect((await pipe.testRun(frame)).action).toBe('drop');
    expect(trailsOf(trails).get(0x13)).toBe(1n);
    const st = pipe.stats();
    expect(st.stages.map((s) => s.name)).toEqual(['s1', 's3', 's2']);
    expect(st.stages[1]!.ended.drop).toBe(1n);

    await pipe.reorder(['s2', 's1', 's3']);
    expect((await pipe.testRun(frame)).action).toBe('drop');
    expect(trailsOf(trails).get(0x213)).toBe(1n);

    expect(await pipe.remove('s3')).toBe(true);
    expect(await pipe.remove('s3')).toBe(false);
    expect((await pipe.testRun(frame)).action).toBe('pass');
    expect(trailsOf(trails).get(0x21)).toBe(1n);
  });

  it('bad changes are refused before the kernel changes', async () => {
    const before = pipe.stages;
    await expect(pipe.add(a)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'stages[2].name' });
    await expect(pipe.add({ ...c, name: 'x' }, { before: 'nope' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'before' });
    await expect(pipe.add({ ...c, name: 'x' }, { before: 's1', after: 's2' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'after' });
    await expect(pipe.reorder(['s1'])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'names' });
    await expect(pipe.setStages(Array.from({ length: 9 }, (_, i) => ({ ...a, name: `n${i}` })))).rejects.toMatchObject({ field: 'stages' });
    await expect(pipe.setStages([{ name: 'bad name', program: a.program }])).rejects.toMatchObject({ field: 'stages[0].name' });
    await expect(pipe.setStages([{ name: 'x', program: {} as never }])).rejects.toMatchObject({ field: 'stages[0].program' });
    expect(pipe.stages).toEqual(before);
    expect((await pipe.testRun(frame)).action).toBe('pass');
  });

  it('a program loaded without the pipeline maps cannot continue the walk, and says nothing wrong: it ends it', async () => {
    const alone = await BpfObject.load(testObject('pipeline_stage'), { globals: { stage_id: 9 } });
    opened.push(alone);
    const p = alone.xdpProgram('xdp_stage');
    opened.push(p);
    await pipe.setStages([{ name: 'alone', program: p }, b]);
    expect((await pipe.testRun(frame)).action).toBe('pass');
    // b never ran: the walk ended in 'alone', which counted nothing in the pipeline
    await pipe.setStages([b]);
  });
});

describe('XdpPipeline under a live flood', () => {
  let lab: Lab;
  let client: LabHost;
  let pipe: XdpPipeline;
  let trails: BpfMap<number, bigint>;
  const stages: TestStage[] = [];

  beforeAll(async () => {
    lab = await Lab.create({ name: 'pipeline' });
    client = await lab.host('client');
    const server = await lab.host('server');
    const l = await lab.link(client, server, { aAddrs: ['198.18.0.1/24', '2001:db8::1/64'], bAddrs: ['198.18.0.2/24', '2001:db8::2/64'] });
    pipe = await XdpPipeline.attach(l.b.ifname, { netns: server.netns });
    const first = await stage(pipe, 1);
    trails = first.obj.map('trails', { key: u32, value: u64 });
    opened.push(trails);
    stages.push(first);
    for (const id of [2, 3, 4]) stages.push(await stage(pipe, id, { trails }));
  });
  afterAll(async () => {
    pipe?.close();
    await lab?.close();
  });

  it('hundreds of changes (add, remove, reorder, replace) while UDP flows: every packet walked one whole chain', async () => {
    const [s1, s2, s3, s4] = stages as [TestStage, TestStage, TestStage, TestStage];
    const chains: TestStage[][] = [[s1, s2], [s2, s1, s3], [s3], [], [s1, s2, s3, s4], [s4, s3, s2, s1]];
    const valid = new Set([[s1, s2, s3], ...chains].filter((ch) => ch.length).map((ch) => ch.reduce((t, s) => (t << 4) | Number(s.name.slice(1)), 0)));
    let flowing = true;
    let liveSent = 0;
    const live = (async () => {
      for (let i = 0; i < 10_000 && flowing; i++) liveSent += (await client.sendUdp(i % 2 ? '198.18.0.2' : '2001:db8::2', 9, { count: 2000 })).sent;
      return liveSent;
    })();
    const lanes = Array.from({ length: 2 }, async () => {
      let runs = 0;
      while (flowing) {
        await pipe.testRun(frame, { repeat: 500 });
        runs += 500;
      }
      return runs;
    });
    // at least 300 changes, and on until 8,000 live datagrams have gone through (bounded)
    let changes = 0;
    for (let i = 0; i < 100_000 && (i < 300 || liveSent < 8_000); i++, changes++) {
      if (i % 4 === 0) await new Promise((r) => setTimeout(r, 0)); // let the lanes and the sender run
      const k = i % 6;
      if (k === 1) await pipe.add(s3); // [s1, s2] -> [s1, s2, s3], then reordered
      if (k === 1) await pipe.reorder(['s2', 's1', 's3']);
      else await pipe.setStages(chains[k]!);
    }
    flowing = false;
    const sent = await live;
    const runs = (await Promise.all(lanes)).reduce((x, y) => x + y, 0);
    const st = pipe.stats();
    const seen = trailsOf(trails);
    const walked = [...seen.values()].reduce((x, y) => x + y, 0n);
    const foreign = [...seen.keys()].filter((t) => !valid.has(t)).map((t) => t.toString(16));
    expect(foreign).toEqual([]); // no packet met a half-built or mixed chain
    expect(sent).toBeGreaterThan(0);
    expect(runs).toBeGreaterThan(0);
    // exact accounting: every packet into the root ended once, in a stage or as 'empty'
    expect(walked + st.empty).toBe(st.packets);
    expect(st.packets).toBeGreaterThanOrEqual(BigInt(sent + runs));
    console.log(
      `pipeline: ${changes} changes, ${sent} live datagrams, ${runs} test runs, ${st.packets} packets: ${[...seen].map(([t, n]) => `${t.toString(16)}:${n}`).join(' ')} empty:${st.empty}`,
    );
  });
});

describe('Decapsulator as a pipeline stage', () => {
  let lab: Lab;
  let pipe: XdpPipeline;
  let decap: Decapsulator;
  let after: TestStage;
  let trails: BpfMap<number, bigint>;
  const fx = JSON.parse(readFileSync(join(__dirname, '../fixtures/decap/fixtures.json'), 'utf8')) as {
    configs: Record<string, Record<string, unknown>>;
    cases: { name: string; config: string; in: string; out: string; expect: string }[];
  };

  beforeAll(async () => {
    lab = await Lab.create({ name: 'pipe-decap' });
    const a = await lab.host('a');
    const b = await lab.host('b');
    const l = await lab.link(a, b, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
    // a quiet interface: with the peer end down no live packet (IPv6 neighbour discovery,
    // ...) walks the pipeline, so the counts below are the test runs' alone
    await a.ip(['link', 'set', l.a.ifname, 'down']);
    pipe = await XdpPipeline.attach(l.b.ifname, { netns: b.netns });
    after = await stage(pipe, 7);
    trails = after.obj.map('trails', { key: u32, value: u64 });
    opened.push(trails);
    await pipe.add(after);
    decap = await Decapsulator.attach(pipe, { ...fx.configs.default, stage: { name: 'decap', before: 's7' } });
  });
  afterAll(async () => {
    decap?.close();
    pipe?.close();
    await lab?.close();
  });

  it('decapsulates exactly as alone, then hands the inner frame to the next stage', async () => {
    expect(pipe.stages).toEqual(['decap', 's7']);
    expect(decap.stage?.name).toBe('decap');
    const cases = fx.cases.filter((c) => c.config === 'default');
    expect(cases.length).toBeGreaterThan(5);
    for (const c of cases) {
      const r = await pipe.testRun(Buffer.from(c.in, 'hex'));
      expect(r.action, c.name).toBe('pass');
      expect(r.packet.toString('hex'), c.name).toBe(c.out);
    }
    // every frame went on to the next stage, which ended every walk
    expect(trailsOf(trails).get(0x7)).toBe(BigInt(cases.length));
    const st = pipe.stats();
    expect(st.stages[1]).toMatchObject({ name: 's7', ended: { pass: BigInt(cases.length) } });
    expect(st.stages[0]!.ended.pass).toBe(0n);
  });

  it('attach options that make no sense for a stage are refused', async () => {
    await expect(Decapsulator.attach(pipe, { mode: 'generic' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'mode' });
    await expect(Decapsulator.attach('lo', { stage: { name: 'x' } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'stage' });
    await expect(Decapsulator.attach(pipe, { ...fx.configs.default, stage: { name: 'decap' } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(pipe.stages).toEqual(['decap', 's7']);
  });

  it('decap -> ACL -> next stage: the ACL judges the inner packet the decapsulator uncovered', async () => {
    const vx = fx.cases.find((c) => c.name === 'vxlan4')!; // inner UDP 198.19.0.1:40000 -> 198.19.0.2:7777
    const fw = await AclFirewall.attach(pipe, {
      rules: [{ id: 'no-7777', action: 'deny', proto: 'udp', dstPort: 7777, dst: '198.19.0.2' }],
      stage: { name: 'acl', after: 'decap' },
    });
    try {
      expect(pipe.stages).toEqual(['decap', 'acl', 's7']);
      expect(fw.stage?.name).toBe('acl');
      const t0 = trailsOf(trails).get(0x7) ?? 0n;
      const ended0 = pipe.stats().stages[1]!.ended.drop;
      expect((await pipe.testRun(Buffer.from(vx.in, 'hex'))).action).toBe('drop');
      expect(fw.ruleStats('no-7777')?.packets).toBe(1);
      expect(pipe.stats().stages[1]!.ended.drop).toBe(ended0 + 1n);
      expect(trailsOf(trails).get(0x7) ?? 0n).toBe(t0); // the walk ended at the ACL
      await fw.setRules([]);
      const r = await pipe.testRun(Buffer.from(vx.in, 'hex'));
      expect(r.action).toBe('pass');
      expect(r.packet.toString('hex')).toBe(vx.out); // decapsulated, then allowed on
      expect(trailsOf(trails).get(0x7)).toBe(t0 + 1n);
      await expect(AclFirewall.attach(pipe, { pin: '/sys/fs/bpf/x' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'pin' });
      await expect(AclFirewall.attach('lo', { stage: { name: 'x' } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', field: 'stage' });
    } finally {
      fw.close();
      await pipe.remove('none'); // after the removal close() queued
    }
    expect(pipe.stages).toEqual(['decap', 's7']);
  });

  it('close() of the stage removes it from the pipeline', async () => {
    const d2 = await Decapsulator.attach(pipe, { ...fx.configs.default, stage: { name: 'decap2', index: 0 } });
    expect(pipe.stages).toEqual(['decap2', 'decap', 's7']);
    d2.close();
    await pipe.remove('none'); // queued after the removal close() started
    expect(pipe.stages).toEqual(['decap', 's7']);
  });
});
