/**
 * What one training run learns from and what it keeps (docs/algorithms.md §4): the triplet range
 * (given, or 'auto' from the teacher's distances), the held-out items and the depth at which the
 * model's ranking of them is compared with the teacher's, and, at the end, whether the kept model
 * agrees with the teacher better than its input does.
 */
import { UserError } from '../errors.js';
import type { Matrix } from '../matrix.js';
import type { SelfRanking } from '../triplets/run.js';
import { RANGE_RULE, tripletRange, type TripletRange } from '../triplets/range.js';
import { HOLDOUT_DEFAULTS, holdOutItems, significantlyBetter, teacherAgreement, trainingRanking } from './agreement.js';
import type { Selection, TrainingTeacher } from './loop.js';
import type { TrainState } from './records.js';
import type { TrainOptions } from './options.js';

export interface SelectionOptions {
  /** Fraction of the items held out of training to score agreement with the teacher (0: none). */
  readonly holdOut?: number;
  /** Epochs without a better agreement before training stops. */
  readonly patience?: number;
}

export const SELECTION_DEFAULTS = Object.freeze({ holdOut: HOLDOUT_DEFAULTS.fraction, patience: 3 });

export interface TrainingPlan {
  /** The options with the triplet range and the contrastive positives resolved. */
  readonly options: TrainOptions & { readonly triplets: { readonly k: number }; readonly contrastive: { readonly positives: number } };
  /** The estimate behind k and the agreement depth (when the teacher's scores are there). */
  readonly range: TripletRange | null;
  readonly kChosen: 'auto' | 'given';
  readonly heldOut: Int32Array;
  /** The ranking without the held-out items (undefined: train on all of it). */
  readonly teacher: TrainingTeacher | undefined;
  /**
   * The teacher's top-depth neighbours are the relevant items of the agreement score: the set the
   * student was taught, the relevant set the triplet range implies (k / RANGE_RULE.multiple) or
   * the contrastive positives. Shallower, the input always wins, as the teacher's first
   * neighbours are the input's own (measured on MNIST and Flowers-17).
   */
  readonly depth: number;
  readonly patience: number;
  /** The teacher's ranking, which the verdict reads. */
  readonly ranking: SelfRanking;
}

/** Resolves the triplet range and the held-out items of a run on `ranking`. */
export function trainingPlan(ranking: SelfRanking, options: TrainOptions, selection: SelectionOptions = {}): TrainingPlan {
  const range = ranking.scores ? tripletRange(ranking.scores, ranking.rows, ranking.order) : null;
  const auto = options.triplets.k === 'auto';
  if (auto && !range) throw new UserError(`${ranking.file}: --triplet-range auto needs the teacher's distances (scores.npy beside it, as ddistill diffuse writes); give --triplet-range N instead`);
  const autoPositives = options.loss === 'contrastive' && options.contrastive.positives === 'auto';
  if (autoPositives && !range) throw new UserError(`${ranking.file}: --positives auto needs the teacher's distances (scores.npy beside it, as ddistill diffuse writes); give --positives N instead`);
  const k = Math.min(auto ? range!.k : (options.triplets.k as number), ranking.length);
  const heldOut = holdOutItems(ranking.rows, options.seed, selection.holdOut ?? 0);
  // The estimate counts positions in the whole ranking; the training lists lose the held-out items.
  const positives = options.contrastive.positives === 'auto' ? Math.max(2, Math.round((range?.positives ?? 2) * (1 - heldOut.length / ranking.rows))) : options.contrastive.positives;
  const teacher = heldOut.length > 0 ? trainingRanking(ranking.neighbours, ranking.rows, heldOut) : undefined;
  // The set the student was taught, at the scale of the whole ranking. Triplets: the relevant set
  // the range reaches past (k = multiple × that set); with --triplet-range auto the teacher's
  // estimate, a given k states the user's scale. Contrastive: the positives (auto: their estimate
  // before the held-out share; the teacher's first few alone would judge the order inside the set,
  // which that loss does not teach).
  const contrastive = options.loss === 'contrastive';
  const depth = contrastive
    ? options.contrastive.positives === 'auto' ? (range?.positives ?? positives) : positives
    : auto ? range!.relevantSet : Math.max(1, Math.round(k / RANGE_RULE.multiple));
  return {
    options: { ...options, triplets: { ...options.triplets, k: Math.min(k, teacher?.length ?? k) }, contrastive: { ...options.contrastive, positives } },
    range, kChosen: auto ? 'auto' : 'given', heldOut, teacher, depth,
    patience: selection.patience ?? SELECTION_DEFAULTS.patience,
    ranking,
  };
}

/**
 * The selection hook of a plan with held-out items: agreement of the model's embeddings, after
 * every epoch, to keep the best epoch and stop early. Not for the contrastive loss: its agreement
 * with the teacher peaks within the first epochs while retrieval goes on improving (measured on
 * Flowers-17: the best agreement at epoch 2, 77.7 mAP, against 79.6 after 1,000 steps), so it
 * trains its steps and only the verdict judges it.
 */
export function selector(plan: TrainingPlan, embed: (model: Parameters<Selection['score']>[0]) => Promise<Matrix>): Selection | undefined {
  if (plan.heldOut.length === 0 || plan.options.loss === 'contrastive') return undefined;
  const { ranking } = plan;
  return {
    patience: plan.patience,
    score: async (model) => teacherAgreement(await embed(model), plan.heldOut, ranking.neighbours, ranking.rows, plan.depth).score,
  };
}

/** One paired comparison of agreements at one depth (rounded for the record). */
export interface AgreementGain {
  /** The teacher's top-`depth` neighbours are the relevant items. */
  readonly depth: number;
  readonly input: number;
  readonly model: number;
  readonly gain: number;
  readonly standardError: number;
  /** The gain is positive and at least two standard errors (paired over the held-out items). */
  readonly better: boolean;
  /** The gain is negative by at least two standard errors. */
  readonly worse: boolean;
}

/** Whether the kept model beats its input at agreeing with the teacher on the held-out items. */
export interface Verdict {
  readonly input: number;
  readonly model: number;
  readonly gain: number;
  readonly standardError: number;
  readonly better: boolean;
  /** What decided: the relevant set (`depth`), or the deeper list when that one was even. */
  readonly by: 'relevant set' | 'deeper';
  /** At the triplet range's scale (RANGE_RULE.multiple × the relevant set), when it was consulted. */
  readonly deeper?: AgreementGain;
}

/**
 * The verdict (docs/algorithms.md §4). First at the relevant set's depth: better when the model's
 * agreement gain is significant. Where that is even (neither significantly better nor worse, as
 * when both agree nearly perfectly on a few views of one object), the teacher's list is read
 * deeper, at the triplet range's scale, where the order of the neighbourhood beyond the first few
 * still separates the two: better when the gain there is significant. A model significantly worse
 * at the relevant set is never better, and a deeper gain never outweighs it.
 */
export function verdict(plan: TrainingPlan, model: Matrix, input: Matrix): Verdict | null {
  if (plan.heldOut.length === 0) return null;
  const { ranking, depth } = plan;
  const first = compareAt(plan, model, input, depth);
  const base = { input: first.input, model: first.model, gain: first.gain, standardError: first.standardError };
  const deepDepth = Math.min(ranking.length, depth * RANGE_RULE.multiple);
  if (first.better || first.worse || deepDepth <= depth) return { ...base, better: first.better, by: 'relevant set' };
  const deeper = compareAt(plan, model, input, deepDepth);
  return { ...base, better: deeper.better, by: 'deeper', deeper };
}

function compareAt(plan: TrainingPlan, model: Matrix, input: Matrix, depth: number): AgreementGain {
  const { ranking } = plan;
  const score = (x: Matrix) => teacherAgreement(x, plan.heldOut, ranking.neighbours, ranking.rows, depth);
  const m = score(model);
  const i = score(input);
  const t = significantlyBetter(m, i);
  const r4 = (v: number) => Number(v.toFixed(4));
  return { depth, input: r4(i.score), model: r4(m.score), gain: r4(t.gain), standardError: r4(t.standardError), better: t.better, worse: t.gain < 0 && -t.gain >= 2 * t.standardError };
}

/** The run's record of how k was chosen and what was kept (train.json and the model manifest). */
export function selectionRecord(plan: TrainingPlan, state: TrainState, v: Verdict | null): Record<string, unknown> {
  return {
    k: plan.options.triplets.k,
    kChosen: plan.kChosen,
    kHow: plan.kChosen === 'auto' ? plan.range!.how : 'given (--triplet-range)',
    relevantSetEstimate: plan.range ? { median: plan.range.relevantSet, quartiles: plan.range.quartiles } : null,
    m0: plan.options.triplets.m0,
    positives: plan.options.loss === 'contrastive' ? plan.options.contrastive.positives : null,
    heldOut: plan.heldOut.length,
    agreementDepth: plan.depth,
    initialAgreement: state.initialAgreement ?? null,
    curve: state.history.map((h) => h.agreement ?? null),
    best: state.best ?? null,
    stopped: state.stopped ?? null,
    verdict: v,
  };
}
