/**
 * `bpfkit demo`: a namespace lab showing every module live. Each section builds its
 * own lab, runs, prints, and tears everything down (also on Ctrl-C or failure).
 */
import { Lab } from '../lab/index.js';
import type { DemoContext, DemoSection } from './context.js';
import { coreSection } from './core.js';
import { routeSection } from './route.js';
import { decapSection } from './decap.js';
import { aclSection } from './acl.js';
import { pipelineSection } from './pipeline.js';
import { chainSection } from './chain.js';
import { traceSection } from './trace.js';

/** Sections in the order they run; modules add theirs here. */
export const SECTIONS: DemoSection[] = [coreSection, decapSection, aclSection, routeSection, pipelineSection, chainSection, traceSection];

/**
 * Runs the sections (all, or `only`). Ctrl-C (SIGINT/SIGTERM) or `signal` stops the
 * running section's loops early; its lab is removed and no further section starts.
 */
export async function runDemo(opts: { seconds?: number; only?: string[]; print?: (l: string) => void; signal?: AbortSignal } = {}): Promise<void> {
  const print = opts.print ?? ((l: string) => console.log(l));
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  if (opts.signal?.aborted) ac.abort();
  opts.signal?.addEventListener('abort', onSig, { once: true });
  try {
    for (const s of SECTIONS) {
      if (opts.only?.length && !opts.only.includes(s.name)) continue;
      if (ac.signal.aborted) break;
      print(`\n== ${s.title} ==`);
      const lab = await Lab.create({ name: `demo-${s.name}` });
      try {
        const ctx: DemoContext = { lab, seconds: opts.seconds ?? 3, print, signal: ac.signal };
        await s.run(ctx);
      } finally {
        await lab.close();
      }
    }
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    opts.signal?.removeEventListener('abort', onSig);
  }
}
