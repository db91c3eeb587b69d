import { it } from 'vitest';
import { compileBlob } from '../../lib/modules/acl/classifier.js';
import { expandRules, normalizeRules } from '../../lib/modules/acl/rules.js';
import { adversarialRules, randomRules } from '../../bench/acl-shapes.mjs';
it('prof', async () => {
  for (const [name, rules] of [['rand', randomRules(100_000, 1)], ['wide', adversarialRules('wide', 100_000, 1)], ['nested', adversarialRules('nested', 100_000, 1)]] as const) {
    for (let k = 0; k < 2; k++) {
      const t0 = performance.now();
      const norm = normalizeRules(rules, { capacity: 200_000 });
      const t1 = performance.now();
      const slots = Uint32Array.from(norm, (_, i) => i);
      const { v4, v6 } = expandRules(norm, slots, slots);
      const t2 = performance.now();
      const c = await compileBlob(v4, v6);
      const t3 = performance.now();
      console.log(name, 'norm', (t1 - t0).toFixed(0), 'expand', (t2 - t1).toFixed(0), 'compile', (t3 - t2).toFixed(0), 'trees', c.trees.map((t) => `${t.family}:${t.records}:${t.words}:${t.maxDepth}:${t.maxLeaf}`).join(' '));
    }
  }
}, 600_000);
