/** The ground-truth flags: one declaration for `eval`, `train` (validation) and `bootstrap`. */
import type { Command } from 'commander';
import type { GroundTruthOptions } from '../../pipeline/plan.js';

/** Ground truth for evaluation (eval, validation in train, per-iteration metrics in bootstrap). */
export interface GroundTruthFlags {
  queries?: string;
  gnd?: string;
  labels?: string;
  queryLabels?: string;
  groups?: string;
  queryGroups?: string;
}

/** Adds --gnd, --labels, --query-labels, --groups and --query-groups, each help text after `purpose` (e.g. "validation: "). */
export function addGroundTruthOptions(cmd: Command, purpose = ''): Command {
  return cmd
    .option('--gnd <file|name>', `${purpose}revisited Oxford/Paris ground truth: gnd_*.pkl/.json, or roxford5k / rparis6k (shipped)`)
    .option('--labels <file>', `${purpose}class label of each database item`)
    .option('--query-labels <file>', `${purpose}class label of each query`)
    .option('--groups <n|file>', `${purpose}UKBench groups: a group size, or a file of group ids per database item`)
    .option('--query-groups <file>', `${purpose}group id of each query, when the queries are not the database items`);
}

/** The ground truth out of parsed flags. */
export function groundTruthOf(f: GroundTruthFlags): GroundTruthOptions {
  return { gnd: f.gnd, labels: f.labels, queryLabels: f.queryLabels, groups: f.groups, queryGroups: f.queryGroups };
}
