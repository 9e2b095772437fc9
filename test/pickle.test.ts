import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRevisitedGroundTruth } from '../src/io/groundTruth.js';
import { pyToJs, unpickle } from '../src/io/pickle.js';
import { FIXTURES, HAS_SHARED, SHARED } from './helpers.js';

const pkl = (name: string) => readFileSync(join(FIXTURES, 'pickle', name));

// What make_fixtures.py pickled, written out by hand.
const plain = {
  name: 'café',
  ints: [0, 1, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, 2 ** 40, -(2 ** 40)],
  floats: [0.5, -1.25, 1e300],
  flags: [true, false, null],
  tuple: [1, 'two', 3.0],
  nested: { a: [[], [1]], '7': 'seven' },
};

describe('pickle subset', () => {
  it.each([0, 2, 4, 5])('decodes plain data written with protocol %i', (protocol) => {
    expect(pyToJs(unpickle(pkl(`plain_p${protocol}.pkl`)))).toEqual(plain);
  });

  it('decodes bytes (protocol 4)', () => {
    expect(unpickle(pkl('bytes_p4.pkl'))).toEqual([Uint8Array.of(0, 1), Uint8Array.of(2)]);
  });

  it('refuses pickles that construct Python objects, naming the file', () => {
    expect(() => unpickle(pkl('object.pkl'), 'object.pkl')).toThrow(/object\.pkl: .*GLOBAL builds Python objects/);
  });

  it('reports truncated data', () => {
    const bytes = pkl('plain_p2.pkl');
    expect(() => unpickle(bytes.subarray(0, bytes.length - 10), 'cut.pkl')).toThrow(/cut\.pkl: .*(end of data|stack)/);
  });
});

describe.skipIf(!HAS_SHARED)('revisitop ground truth (shared data)', () => {
  it.each(['roxford5k', 'rparis6k'])('%s: the .pkl and the .json hold the same content', (name) => {
    const fromPkl = loadRevisitedGroundTruth(join(SHARED, 'data', name, `gnd_${name}.pkl`));
    const fromJson = loadRevisitedGroundTruth(join(SHARED, 'data', name, `gnd_${name}.json`));
    expect(fromPkl).toEqual(fromJson);
    expect(fromPkl.qimlist.length).toBe(70);
    expect(fromPkl.imlist.length).toBe(name === 'roxford5k' ? 4993 : 6322);
  });
});
