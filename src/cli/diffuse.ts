import { Command, Option } from 'commander';
import type { EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { CAS_DEFAULTS } from '../diffusion/cas.js';
import { DIFFUSION_METHODS, type DiffusionMethod, type DiffusionParams } from '../diffusion/index.js';
import { ISCEN_DEFAULTS } from '../diffusion/iscen.js';
import { LCDP_DEFAULTS } from '../diffusion/lcdp.js';
import { diffuseFiles } from '../diffusion/run.js';
import { paramsFlag } from './flags/diffusion.js';
import { aliased, hiddenAlias, print, stageProgress } from './common.js';
import { oneOf } from './flags/numbers.js';

interface DiffuseFlags {
  method: DiffusionMethod;
  db: string;
  queries?: string;
  query?: string;
  out: string;
  topK: string;
  preset?: 'default' | 'small';
  params?: string;
  geodesic: boolean;
  converged?: boolean;
  normalize: boolean;
  engine: EngineChoice;
  json?: boolean;
}

/** `key=value` pairs of `o` after `prefix`, wrapped to 80 columns under it. */
function wrapList(prefix: string, o: object): string {
  const lines: string[] = [];
  let line = prefix;
  for (const item of Object.entries(o).map(([k, v]) => `${k}=${v}`)) {
    if (line.length > prefix.length && line.length + item.length + 2 > 80) {
      lines.push(`${line.trimEnd()},`);
      line = ' '.repeat(prefix.length);
    } else if (line.length > prefix.length) {
      line += ', ';
    }
    line += item;
  }
  lines.push(line);
  return lines.join('\n') + '\n';
}

/** --params: a JSON object, or a file holding one, checked against the method's parameters. */
export function diffuseCommand(): Command {
  return new Command('diffuse')
    .summary('rank neighbours by diffusion (CAS, LCDP, Iscen et al.)')
    .description(
      'Ranks neighbours by a diffusion over the k-nearest-neighbour graph of the\n' +
        'descriptors.\n' +
        '  with --queries:     query re-ranking: the queries join the graph (as in\n' +
        '                      the CAS reference code) and each gets the database\n' +
        '                      ranked\n' +
        '  without --queries:  database self-ranking: every item gets its neighbours\n' +
        '                      ranked (itself left out); the distillation learns\n' +
        '                      from it\n' +
        'Writes, in --out: indices.npy (int32 rows × K, best first), scores.npy\n' +
        '(float32; CAS: final distances, smaller is better; LCDP/Iscen: similarities)\n' +
        'and diffusion.json (method, all parameters, per-stage timings).\n' +
        '`ddistill eval --ranks DIR` scores the output.\n\n' +
        'Methods and their parameters (change any with --params):\n' +
        wrapList('  cas    ', CAS_DEFAULTS) +
        wrapList('  lcdp   ', LCDP_DEFAULTS) +
        wrapList('  iscen  ', ISCEN_DEFAULTS) +
        'CAS keeps its diffusion matrix dense up to denseLimit items; above that each\n' +
        'row keeps its `truncate` largest entries, so memory grows as O(n·truncate).',
    )
    .addOption(new Option('--method <name>', 'diffusion method').choices(DIFFUSION_METHODS).default('cas'))
    .requiredOption('--db <file.npy>', 'database descriptors, n × d')
    .option('--queries <file.npy>', 'query descriptors, m × d; omit for database self-ranking')
    .addOption(hiddenAlias('--query <file.npy>'))
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .option('--top-k <n|all>', 'neighbours kept per row (all: the whole database)', '1000')
    .addOption(new Option('--preset <name>', 'CAS neighbourhood sizes: default, or small (k1..k5 = 5, 20, 25, 6, 25) for small groups').choices(['default', 'small']))
    .option('--params <json|file.json>', 'method parameters as JSON, e.g. \'{"k1": 5, "lambda": 0.2}\' or a file holding it')
    .option('--no-geodesic', 'CAS: use the Jensen–Shannon distance directly, without geodesic refinement')
    .option('--converged', 'CAS: iterate the diffusion to convergence instead of 10 steps')
    .option('--no-normalize', 'do not L2-normalise the descriptors first')
    .addOption(
      new Option('--engine <name>', 'matrix product engine: auto, onnxruntime or js')
        .argParser(oneOf(['auto', 'onnxruntime', 'js'] as const))
        .default('auto'),
    )
    .option('--json', 'print diffusion.json as one line instead of a summary')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ddistill diffuse --db db.npy --queries q.npy --top-k all --out cas/ && ddistill eval --ranks cas/ --gnd gnd_roxford5k.pkl\n' +
        '  ddistill diffuse --method lcdp --db db.npy --top-k 300 --out teacher/\n' +
        '  ddistill diffuse --db db.npy --queries q.npy --preset small --no-geodesic --out cas/',
    )
    .action(async (flags: DiffuseFlags) => {
      let topK: number | undefined;
      if (flags.topK === 'all') topK = Number.MAX_SAFE_INTEGER;
      else {
        topK = Number(flags.topK);
        if (!Number.isInteger(topK) || topK < 1) throw new UserError(`--top-k must be a positive integer or 'all', got '${flags.topK}'`);
      }
      let params: DiffusionParams | {} = flags.params ? paramsFlag(flags.method, flags.params) : {};
      if (flags.method === 'cas') {
        if (!flags.geodesic) params = { ...params, geodesic: false };
        if (flags.converged) params = { ...params, converged: true };
      } else if (!flags.geodesic || flags.converged) {
        throw new UserError(`--no-geodesic and --converged apply to CAS only, not ${flags.method}`);
      }
      const bar = stageProgress();
      let manifest;
      try {
        manifest = await diffuseFiles({
          method: flags.method, db: flags.db, query: aliased(flags.queries, flags.query), out: flags.out, topK, params,
          preset: flags.preset, normalize: flags.normalize, engine: flags.engine,
          onProgress: (s, d, t) => bar.update(s, d, t),
        });
      } finally {
        bar.done();
      }
      if (flags.json) {
        print(JSON.stringify(manifest));
        return;
      }
      print(`${manifest.method} ${manifest.mode === 'query' ? 'query re-ranking' : 'self-ranking'}: ${manifest.rows} rows × top ${manifest.k} of ${manifest.databaseSize} in ${manifest.seconds.toFixed(2)} s`);
      print(`  stages: ${Object.entries(manifest.timings).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')}`);
      print(`wrote indices.npy, scores.npy and diffusion.json in ${flags.out}`);
    });
}
