/** What every `bpfkit demo` section gets. */
import type { Lab } from '../lab/index.js';

export interface DemoContext {
  /** A fresh lab per section; the runner closes it afterwards (also on failure). */
  lab: Lab;
  /** How long live sections keep traffic running. */
  seconds: number;
  /** Prints one line of demo output. */
  print(line: string): void;
  /** Aborted on Ctrl-C: sections stop their loops early. */
  signal: AbortSignal;
}

export interface DemoSection {
  name: string;
  title: string;
  run(ctx: DemoContext): Promise<void>;
}

/** Sleep that ends early when the demo is interrupted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
