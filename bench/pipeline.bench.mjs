// XdpPipeline benchmark: what the pipeline adds per packet, in BPF_PROG_TEST_RUN ns/packet
// (the kernel's own mean over `repeat` runs, so no JS time is in it), pinned to one CPU.
//
//   empty           xdp_pass: the floor
//   stage alone     the test stage (test/bpf/pipeline_stage.bpf.c) attached alone
//   root + 1        the pipeline root, then the same stage: root cost + one tail call
//   root + 2        two stages: the second stage's cost is the per-stage cost (its tail
//                   call, the cursor lookup, the stage's own few instructions)
//   root + 4        four stages
//   decap alone / root + decap   the Decapsulator on a non-tunnel frame (it parses and
//                   passes), alone and as the pipeline's one stage
//
// Rounds alternate the programs; medians of rounds with the spread (min-max).
// Goal (issue 13): one tail call <= 5 ns.
import { join } from 'node:path';
import { BpfObject, Decapsulator, XdpPipeline } from '../dist/index.js';
import { Lab } from '../dist/lab.js';
import { median, pinProcess, root } from './lib.mjs';

const stageObj = join(root, 'build', 'test-bpf', 'pipeline_stage.bpf.o');
const frame = Buffer.concat([
  Buffer.from('020000000002020000000001', 'hex'),
  Buffer.from('0800', 'hex'),
  Buffer.from('4500002e000100004011f9b1c6120001c6120002', 'hex'),
  Buffer.from('9c400009001a0000', 'hex'),
  Buffer.alloc(18),
]);

export default {
  name: 'pipeline',
  description: 'XdpPipeline: root + tail call cost per stage (testRun ns/packet)',
  async run({ quick, log }) {
    const restore = pinProcess();
    const repeat = quick ? 200_000 : 2_000_000;
    const rounds = quick ? 3 : 7;
    const lab = await Lab.create({ name: 'bench-pipe' });
    const opened = [];
    try {
      const a = await lab.host('a');
      const b = await lab.host('b');
      const l = await lab.link(a, b, { aAddrs: ['198.18.0.1/24'], bAddrs: ['198.18.0.2/24'] });
      const basic = await BpfObject.openBuiltin('xdp_basic').load();
      opened.push(basic);
      const empty = basic.xdpProgram('xdp_pass');
      const aloneObj = await BpfObject.load(stageObj);
      opened.push(aloneObj);
      const alone = aloneObj.xdpProgram('xdp_stage');
      const pipes = {};
      for (const n of [1, 2, 4]) {
        const pipe = await XdpPipeline.load();
        opened.push(pipe);
        const stages = [];
        for (let i = 0; i < n; i++) {
          const so = pipe.stageOptions();
          const o = await BpfObject.load(stageObj, { maps: so.maps, globals: { ...so.globals, stage_id: i + 1 } });
          opened.push(o);
          stages.push({ name: `s${i}`, program: o.xdpProgram('xdp_stage') });
        }
        await pipe.setStages(stages);
        pipes[n] = pipe;
      }
      const decapAlone = await Decapsulator.load({ rewriteMac: false });
      opened.push(decapAlone);
      const decapPipe = await XdpPipeline.attach(l.b.ifname, { netns: b.netns });
      opened.push(decapPipe);
      const decapStage = await Decapsulator.attach(decapPipe, { rewriteMac: false });
      opened.push(decapStage);

      const runners = {
        empty: (f) => empty.testRun(f, { repeat }),
        'stage alone': (f) => alone.testRun(f, { repeat }),
        'root + 1': (f) => pipes[1].testRun(f, { repeat }),
        'root + 2': (f) => pipes[2].testRun(f, { repeat }),
        'root + 4': (f) => pipes[4].testRun(f, { repeat }),
        'decap alone': (f) => decapAlone.testRun(f, { repeat }),
        'root + decap': (f) => decapPipe.testRun(f, { repeat }),
      };
      const samples = Object.fromEntries(Object.keys(runners).map((k) => [k, []]));
      for (let r = 0; r < rounds; r++) {
        for (const [k, fn] of Object.entries(runners)) samples[k].push((await fn(frame)).durationNs);
        log(`round ${r + 1}/${rounds}`);
      }
      const med = Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, median(xs)]));
      const rows = Object.entries(samples).map(([k, xs]) => ({
        program: k,
        'ns/packet': med[k],
        min: Math.min(...xs),
        max: Math.max(...xs),
        'x empty': med[k] / med.empty,
      }));
      const summary = {
        rootOverheadNs: med['root + 1'] - med['stage alone'],
        perExtraStageNs: med['root + 2'] - med['root + 1'],
        perStageAt4Ns: (med['root + 4'] - med['root + 1']) / 3,
        decapInPipelineOverheadNs: med['root + decap'] - med['decap alone'],
      };
      return { rows, summary };
    } finally {
      for (const o of opened.reverse()) o.close();
      await lab.close();
      restore();
    }
  },
};
