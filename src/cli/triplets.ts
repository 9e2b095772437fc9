import { Command } from 'commander';
import { TRIPLET_DEFAULTS } from '../triplets/mining.js';
import { tripletFiles } from '../triplets/run.js';
import { aliased, hiddenAlias, print } from './common.js';
import { integer, nonNegative, parsePositiveInt } from './flags/numbers.js';

interface TripletFlags {
  ranks: string;
  out: string;
  tripletRange: number;
  k?: number;
  m0: number;
  perAnchor: number;
  seed: number;
  json?: boolean;
}

export function tripletsCommand(): Command {
  return new Command('triplets')
    .summary('soft-margin triplets from a diffusion self-ranking')
    .description(
      'Mines soft-margin triplets (Zhao et al., BMVC 2018) from a database\n' +
        'self-ranking written by `ddistill diffuse` without --queries: for each anchor,\n' +
        'two items drawn at random from its top-k by diffusion; the better-ranked is\n' +
        'the closer, the other the farther, and the margin is (|r_f − r_c| / k)·m0.\n' +
        'The same seed gives the same triplets. Writes, in --out:\n' +
        '  triplets.npy  int32 count × 3 (anchor, closer, farther)\n' +
        '  margins.npy   float32 count\n' +
        '  triplets.json what was mined, from what, with which options\n' +
        'k must reach past an item\'s relevant set: ordering items inside one class\n' +
        'teaches nothing that transfers to new queries. It is capped at the\n' +
        'ranking\'s length.',
    )
    .requiredOption('--ranks <dir|indices.npy>', 'a diffuse self-ranking folder, or its indices.npy')
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .option('--triplet-range <n>', 'triplets are drawn from each item\'s top n in the diffusion ranking', parsePositiveInt, TRIPLET_DEFAULTS.k)
    .addOption(hiddenAlias('-k, --k <n>', parsePositiveInt))
    .option('--m0 <x>', 'margin scale', nonNegative, TRIPLET_DEFAULTS.m0)
    .option('--per-anchor <n>', 'triplets per anchor', parsePositiveInt, TRIPLET_DEFAULTS.perAnchor)
    .option('--seed <n>', 'seed of the random draws', integer, TRIPLET_DEFAULTS.seed)
    .option('--json', 'print triplets.json as one line')
    .addHelpText('after', '\nExample:\n  ddistill diffuse --db db.npy --top-k 1000 --out teacher/ && ddistill triplets --ranks teacher/ --triplet-range 1000 --out triplets/')
    .action((flags: TripletFlags) => {
      const { tripletRange, k, ...rest } = flags;
      const m = tripletFiles({ ...rest, k: aliased(tripletRange, k) });
      if (flags.json) print(JSON.stringify(m));
      else print(`mined ${m.count} triplets (${m.perAnchor} per anchor, k = ${m.k}, m0 = ${m.m0}, seed ${m.seed}) into ${flags.out}`);
    });
}
