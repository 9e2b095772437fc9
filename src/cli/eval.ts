import { Command, Option } from 'commander';
import type { EngineChoice } from '../backend/dense.js';
import { evaluateFiles, formatReport } from '../eval/run.js';
import { METRICS, type Metric } from '../search/exact.js';
import { aliased, hiddenAlias, print } from './common.js';
import { addGroundTruthOptions } from './flags/groundTruth.js';
import { oneOf } from './flags/numbers.js';

interface EvalFlags {
  db?: string;
  queries?: string;
  query?: string;
  metric: Metric;
  ranks?: string;
  scores?: string;
  order: 'similarity' | 'distance';
  gnd?: string;
  labels?: string;
  queryLabels?: string;
  groups?: string;
  queryGroups?: string;
  engine: EngineChoice;
  json?: boolean;
}

export function evalCommand(): Command {
  const cmd = new Command('eval')
    .summary('retrieval accuracy: revisited Oxford/Paris mAP, class mAP, N-S score')
    .description(
      'Scores a retrieval against ground truth. The ranking comes from ONE of:\n' +
        '  --db/--queries descriptors, ranked by --metric (full exact ranking)\n' +
        '  --ranks       neighbour lists: int32 queries × K .npy, or a search or\n' +
        '                diffuse output folder; items missing from a truncated list\n' +
        '                are ranked after it by base distance to the query, from\n' +
        '                --db/--queries or the descriptors the folder names, else\n' +
        '                in index order (the output says which)\n' +
        '  --scores      a dense queries × n matrix (.npy); --order says whether\n' +
        '                larger is better\n' +
        'and the ground truth from ONE of:\n' +
        '  --gnd         revisited Oxford/Paris (gnd_*.pkl as published by revisitop,\n' +
        '                or the same as .json): mAP and mP@1/5/10, Easy/Medium/Hard\n' +
        '  --labels      class labels of the database (JSON array or one per line):\n' +
        '                class mAP, standard non-interpolated AP; with --query-labels\n' +
        '                for separate queries, else every item queries the rest\n' +
        '  --groups      UKBench-style groups: a group size (item i is in group\n' +
        '                ⌊i/size⌋) or a file of group ids: N-S score, the mean number\n' +
        '                of group members in the top 4 (max 4)',
    )
    .option('--db <file.npy>', 'database descriptors, n × d (with --ranks: to complete truncated lists)')
    .option('--queries <file.npy>', 'query descriptors, m × d (same d); omit for self-retrieval')
    .addOption(hiddenAlias('--query <file.npy>'))
    .addOption(
      new Option('--metric <name>', 'distance for --db/--queries: cosine (L2-normalised) or euclidean')
        .choices(METRICS)
        .default('cosine'),
    )
    .option('--ranks <file.npy|dir>', 'ranked neighbour lists instead of descriptors')
    .option('--scores <file.npy>', 'dense queries × n score matrix instead of descriptors')
    .addOption(
      new Option('--order <kind>', 'with --scores: similarity (larger is better) or distance (smaller is better)')
        .choices(['similarity', 'distance'])
        .default('similarity'),
    );
  return addGroundTruthOptions(cmd)
    .addOption(
      new Option('--engine <name>', 'matrix product engine for --db: auto, onnxruntime or js')
        .argParser(oneOf(['auto', 'onnxruntime', 'js'] as const))
        .default('auto'),
    )
    .option('--json', 'print one JSON line (mAP and mP in percent) instead of text')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ddistill eval --db db.npy --queries q.npy --gnd roxford5k\n' +
        '  ddistill eval --ranks results/ --gnd roxford5k --json\n' +
        '  ddistill eval --db embeddings.npy --labels labels.txt\n' +
        '  ddistill eval --db ukbench.npy --groups 4',
    )
    .action(async (flags: EvalFlags) => {
      const { queries, query, ...rest } = flags;
      const report = await evaluateFiles({ ...rest, query: aliased(queries, query) });
      if (flags.json) {
        print(JSON.stringify(report));
        return;
      }
      print(formatReport(report));
      if (report.protocol === 'revisited') {
        for (const p of ['easy', 'medium', 'hard'] as const) {
          const m = report.mP[p];
          print(`  ${p.padEnd(6)} mAP ${report.mAP[p].toFixed(2).padStart(6)}   mP@1 ${m['1']!.toFixed(2).padStart(6)}   mP@5 ${m['5']!.toFixed(2).padStart(6)}   mP@10 ${m['10']!.toFixed(2).padStart(6)}`);
        }
      }
      print(`(${report.queries} queries, ${report.databaseSize} database items)`);
      if (report.completion === 'base distance') print('truncated lists were completed by base distance to each query');
      if (report.completion === 'index order') print('truncated lists were completed in index order (give --db/--queries to complete them by base distance)');
    });
}
