/** Parsers of numeric flags: each names the range it accepts, and says it when a value is outside. */
import { InvalidArgumentError } from 'commander';

/** A parser of numbers that pass `check`; `what` completes "expected …" in the error. */
export const numberFlag = (check: (x: number) => boolean, what: string) => (v: string): number => {
  const x = Number(v);
  if (v.trim() === '' || !check(x)) throw new InvalidArgumentError(`expected ${what}.`);
  return x;
};

export const parsePositiveInt = numberFlag((x) => Number.isInteger(x) && x >= 1, 'a positive integer');
export const positive = numberFlag((x) => x > 0, 'a positive number');
export const nonNegative = numberFlag((x) => x >= 0, 'a non-negative number');
export const integer = numberFlag(Number.isInteger, 'an integer');
/** A factor that must stay below 1 (SGD momentum): [0, 1). */
export const belowOne = numberFlag((x) => x >= 0 && x < 1, 'a number in [0, 1)');
/** A share of the items, all of them included (--train-fraction): (0, 1]. */
export const shareOfItems = numberFlag((x) => x > 0 && x <= 1, 'a fraction in (0, 1]');
/** The held-out share of the label-free check (--hold-out; 0 turns it off): [0, 0.5). */
export const holdOutShare = numberFlag((x) => x >= 0 && x < 0.5, 'a fraction in [0, 0.5)');

/** --triplet-range: a positive integer, or auto (from the teacher's distances). */
export const tripletRangeFlag = (v: string): number | 'auto' => (v === 'auto' ? 'auto' : parsePositiveInt(v));

export function oneOf<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}.`);
    return value as T;
  };
}
