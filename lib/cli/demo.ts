/** `bpfkit demo`: the namespace lab showing every module live (lib/demo). */
import type { Command } from 'commander';
import { runDemo, SECTIONS } from '../demo/index.js';
import { EXIT, type ExitCode } from './exit.js';
import { integerOption, listOption } from './options.js';

export function registerDemo(program: Command, run: (fn: () => Promise<ExitCode>) => Promise<void>): void {
  const names = SECTIONS.map((s) => s.name);
  program
    .command('demo')
    .description('run the namespace lab demo (needs root): every module live, in namespaces it creates and removes')
    .option('--seconds <n>', 'how long each live part runs', integerOption(1, 3600), 3)
    .option('--only <sections>', `comma-separated sections to run: ${names.join(', ')}`, listOption(names))
    .action((opts: { seconds: number; only?: string[] }) =>
      run(async () => {
        await runDemo({ seconds: opts.seconds, ...(opts.only ? { only: opts.only } : {}) });
        return EXIT.ok;
      }),
    );
}
