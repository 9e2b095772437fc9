import { Command, Option } from 'commander';
import { METRICS, type Metric } from '../search/exact.js';
import { searchFiles } from '../search/run.js';
import type { EngineChoice } from '../backend/dense.js';
import { aliased, hiddenAlias, print, progress } from './common.js';
import { oneOf, parsePositiveInt } from './flags/numbers.js';

interface SearchFlags {
  db: string;
  queries?: string;
  query?: string;
  topK: number;
  k?: number;
  metric: Metric;
  excludeSelf?: boolean;
  out: string;
  engine: EngineChoice;
  json?: boolean;
}

export function searchCommand(): Command {
  return new Command('search')
    .summary('exact k-nearest-neighbour search by Euclidean or cosine distance')
    .description(
      'Exact k-nearest-neighbour search of query descriptors (or of the database\n' +
        'against itself) by Euclidean or cosine distance. The database is read from\n' +
        'disk in row blocks, so it may be larger than memory. Writes, in --out:\n' +
        '  indices.npy    int32 queries × k, database row indices, nearest first\n' +
        '  distances.npy  float32 queries × k, Euclidean ‖q − x‖ or cosine 1 − cos(q, x)\n' +
        '  search.json    what was searched, with which options and engine, and how\n' +
        '                 long it took',
    )
    .requiredOption('--db <file.npy>', 'database descriptors, n × d (float32/float64/int, C order)')
    .option('--queries <file.npy>', 'query descriptors, m × d; omit to search the database against itself')
    .addOption(hiddenAlias('--query <file.npy>'))
    .option('--top-k <n>', 'neighbours per query', parsePositiveInt, 100)
    .addOption(hiddenAlias('-k, --k <n>', parsePositiveInt))
    .addOption(
      new Option('--metric <name>', 'distance: cosine (vectors are L2-normalised first) or euclidean')
        .choices(METRICS)
        .default('cosine'),
    )
    .option('--exclude-self', 'with no --queries: leave each item out of its own neighbour list (a kNN graph)')
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .addOption(
      new Option('--engine <name>', 'matrix product engine: onnxruntime (fast, native) or js; auto picks onnxruntime when installed')
        .argParser(oneOf(['auto', 'onnxruntime', 'js'] as const))
        .default('auto'),
    )
    .option('--json', 'print one JSON line with the summary instead of text')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ddistill search --db db.npy --queries q.npy --top-k 100 --out results/\n' +
        '  ddistill search --db db.npy --top-k 50 --exclude-self --metric euclidean --out knn/',
    )
    .action(async (flags: SearchFlags) => {
      const bar = progress('search');
      let summary;
      try {
        const { queries, query, topK, k, ...rest } = flags;
        summary = await searchFiles({ ...rest, query: aliased(queries, query), k: aliased(topK, k), onProgress: (d, t) => bar.update(d, t) });
      } finally {
        bar.done();
      }
      if (flags.json) print(JSON.stringify(summary));
      else {
        print(
          `searched ${summary.queries} queries against ${summary.databaseSize} items ` +
            `(k = ${summary.k}, ${summary.metric}, engine ${summary.engine}) in ${summary.seconds.toFixed(2)} s`,
        );
        print(`wrote indices.npy, distances.npy and search.json in ${flags.out}`);
      }
    });
}
