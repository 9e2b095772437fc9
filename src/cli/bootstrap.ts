import { Command, Option } from 'commander';
import { DIFFUSION_METHODS, type DiffusionMethod } from '../diffusion/index.js';
import { UserError } from '../errors.js';
import { bootstrap } from '../pipeline/bootstrap.js';
import { DEFAULT_ITERATIONS, PHOTO_ITERATIONS } from '../pipeline/plan.js';
import type { RunManifest } from '../report/manifest.js';
import { resultTable } from '../report/table.js';
import { duration, print } from './common.js';
import { addRunOptions } from './flags/config.js';
import { paramsFlag } from './flags/diffusion.js';
import { addGroundTruthOptions, groundTruthOf, type GroundTruthFlags } from './flags/groundTruth.js';
import { addImageOptions, addImageTrainingOptions, imageOptionsFromFlags, type ImageTrainingFlags } from './flags/image.js';
import { parsePositiveInt, shareOfItems } from './flags/numbers.js';
import { addTrainingOptions, trainingFromFlags, type TrainingFlags } from './flags/training.js';
import { pipelineHooks, summaryJson } from './runOutput.js';

interface BootstrapFlags extends TrainingFlags, GroundTruthFlags, ImageTrainingFlags {
  db?: string;
  images?: string;
  queryImages?: string;
  out: string;
  iterations?: number;
  trainFraction: number;
  method: DiffusionMethod;
  preset?: 'default' | 'small';
  params?: string;
  topK?: number;
  ranks?: string;
  compare: boolean;
  resume?: boolean;
  json?: boolean;
}

export function bootstrapCommand(): Command {
  const cmd = new Command('bootstrap')
    .summary('diffuse → train → re-embed, repeated: the whole distillation')
    .description(
      'The paper\'s bootstrapping loop. Each iteration: a diffusion self-ranking of\n' +
        'the database (input descriptors first, then the previous embeddings) →\n' +
        'triplets and training of the head (continuing from the previous weights) →\n' +
        're-embedding of database and queries → evaluation when ground truth is given.\n' +
        'With queries and ground truth it also measures the Euclidean baseline and\n' +
        'diffusion query re-ranking (mAP and query time) for comparison.\n\n' +
        'The run folder holds manifest.json (all options, versions, per-stage timings,\n' +
        'per-iteration metrics) and iter-N/ (teacher/, train/, emb/, eval.json). A run\n' +
        'killed at any point continues with --resume and ends with the same result.\n' +
        '--train-fraction f trains on a seeded fraction of the database and embeds and\n' +
        'searches all of it (the paper\'s insertion experiment).\n\n' +
        'Image mode (--images DIR|list, --query-images DIR|list instead of --db and\n' +
        '--queries): the base descriptors come from --backbone (the shipped ImageNet\n' +
        'MobileNet by default) before training (features/); each iteration trains the\n' +
        'image network on the diffusion triplets (by default a head on the frozen\n' +
        'backbone; options as in `ddistill train --images`) and re-embeds the images;\n' +
        'with --gnd the query images are cropped to their boxes (revisitop protocol).\n' +
        'Your own photos, with every default:\n  ddistill bootstrap --images photos/ --out run/\n\n' +
        'Options can come from --config FILE.json (camelCase keys).',
    )
    .option('--db <file.npy>', 'database descriptors, n × d (or --images)')
    .option('--queries <file.npy>', 'query descriptors (evaluation and latency)')
    .option('--images <dir|list>', 'database images instead (image mode; see above)')
    .option('--query-images <dir|list>', 'query images (image mode)')
    .requiredOption('--out <dir>', 'run folder (created if needed)')
    .option('--iterations <n>', `bootstrap iterations (default: ${DEFAULT_ITERATIONS}; ${PHOTO_ITERATIONS} for a head on a frozen image backbone)`, parsePositiveInt)
    .option('--train-fraction <f>', 'fraction of the database to train on', shareOfItems, 1)
    .addOption(new Option('--method <name>', 'diffusion teacher').choices(DIFFUSION_METHODS).default('cas'))
    .addOption(new Option('--preset <name>', 'CAS neighbourhood sizes: default, or small (k1..k5 = 5, 20, 25, 6, 25) for fewer than 70 items (the default needs 70 neighbours) or small groups').choices(['default', 'small']))
    .option('--params <json|file.json>', 'diffusion parameters as JSON, over the preset (see ddistill diffuse --help)')
    .option('--top-k <n>', 'teacher ranking length (default: the triplet range; 300 with --triplet-range auto)', parsePositiveInt)
    .option('--ranks <dir>', 'the first iteration\'s teacher from elsewhere: a self-ranking folder of the database (ddistill diffuse output) instead of running --method')
    .option('--no-compare', 'skip the baseline and query re-ranking measurements');
  addImageTrainingOptions(addImageOptions(addTrainingOptions(addGroundTruthOptions(cmd)), 'image mode: ', { required: false }), 'image mode: ');
  return addRunOptions(cmd, 'continue the run in --out')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ddistill bootstrap --db db.npy --queries q.npy --gnd roxford5k --out run/\n' +
        '  ddistill bootstrap --db db.npy --queries q.npy --labels l.txt --query-labels ql.txt \\\n' +
        '      --iterations 3 -k 3000 --m0 0.5 --batch 256 --lr 0.05 --steps 3000 --out run/\n' +
        '  ddistill bootstrap --images photos/ --out run/\n' +
        '  ddistill bootstrap --images db/ --query-images q/ --gnd roxford5k --out run/\n' +
        '  ddistill bootstrap --images db/ --query-images q/ --gnd roxford5k \\\n' +
        '      --freeze-until conv_pw_11_relu --batch-norm frozen --out run/   # fine-tune\n' +
        '  ddistill bootstrap ... --out run/ --resume      # after an interruption',
    )
    .action(async (flags: BootstrapFlags, command: Command) => {
      if (!flags.db === !flags.images) throw new UserError('give either --db (descriptors) or --images (image mode), on the command line or in --config');
      // Every option that defines the run, as a --config file (config.json in the run folder).
      const config = Object.fromEntries(
        command.options
          .map((o) => [o.attributeName(), command.getOptionValue(o.attributeName())] as const)
          .filter(([k, v]) => v !== undefined && !['config', 'resume', 'json', 'out'].includes(k)),
      );
      const params = flags.params ? (paramsFlag(flags.method, flags.params) as unknown as Record<string, unknown>) : undefined;
      const hooks = pipelineHooks();
      let manifest: RunManifest;
      try {
        manifest = await bootstrap({
          db: flags.db, queries: flags.queries, images: flags.images, queryImages: flags.queryImages, image: flags.images ? imageOptionsFromFlags(flags) : undefined, out: flags.out, iterations: flags.iterations, trainFraction: flags.trainFraction,
          method: flags.method, preset: flags.preset, params, topK: flags.topK, ranks: flags.ranks, compare: flags.compare, resume: flags.resume, config,
          ...groundTruthOf(flags),
          ...trainingFromFlags(flags), normalize: flags.normalize, backend: flags.backend, engine: flags.engine, workers: flags.workers,
          ...hooks,
        });
      } finally {
        hooks.done();
      }
      if (flags.json) {
        print(JSON.stringify(summaryJson(manifest)));
        return;
      }
      const result = manifest.result!;
      if (manifest.iterations.some((r) => Object.keys(r.metrics).length > 0)) for (const line of resultTable(manifest)) print(line);
      else print(`no ground truth given, so nothing was scored (add --labels, --groups or --gnd to measure)`);
      if (result.model) {
        print(`result: iteration ${result.iteration} (${result.reason})`);
        print(`model: ${result.model} (embed new ${flags.images ? 'photos' : 'descriptors'}: ddistill embed --model ${result.model} ...); embeddings: ${result.embeddings}`);
      } else {
        print(`result: the input descriptors (${result.reason}): ${result.embeddings}; search them as they are${flags.images ? ` (new photos: ddistill features --backbone ${flags.backbone ?? 'mobilenet_v1_0.75'} ...)` : ''}`);
      }
      print(`run folder: ${flags.out} (report.html, manifest.json, iter-*/); ${duration(manifest.seconds)} in all`);
    });
}
