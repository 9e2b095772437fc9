/**
 * A reader for the subset of Python's pickle format that plain data uses: dicts, lists, tuples,
 * ints, floats, strings, bytes, booleans and None (protocols 0–5 opcodes for those types). This is
 * what the revisitop ground-truth files (`gnd_*.pkl`) contain. Anything that would construct a
 * Python object (GLOBAL, REDUCE, BUILD, …) is rejected: it could not be represented here, and
 * executing it is what makes untrusted pickles dangerous.
 */
import { UserError } from '../errors.js';

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyDict;
/** A Python dict with string or number keys (insertion order kept). */
export type PyDict = Map<string | number, PyValue>;

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

const OPNAMES: Record<number, string> = {
  0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX',
  0x69: 'INST', 0x6f: 'OBJ', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

/** Decodes a pickle of plain data. `source` names the file in error messages. */
export function unpickle(bytes: Uint8Array, source = 'pickle'): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder('latin1');
  const utf8 = new TextDecoder('utf-8');
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;

  const fail = (why: string): never => {
    throw new UserError(`${source}: cannot read this pickle (${why}); save plain data (dicts, lists, numbers, strings) or use the JSON form`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.length) fail('unexpected end of data');
  };
  const u8 = () => (need(1), bytes[pos++]!);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('object too large');
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text line');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) fail('stack underflow');
    return v as PyValue;
  };
  const popMark = (): PyValue[] => {
    for (let i = stack.length - 1; i >= 0; i--) {
      if (stack[i] === MARK) {
        const items = stack.splice(i) as PyValue[];
        items.shift();
        return items;
      }
    }
    return fail('missing MARK');
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail('stack underflow');
    return v as PyValue;
  };
  const asList = (v: PyValue): PyValue[] => (Array.isArray(v) ? v : fail('APPEND on a non-list'));
  const asDict = (v: PyValue): PyDict => (v instanceof Map ? v : fail('SETITEM on a non-dict'));
  const key = (k: PyValue): string | number => {
    if (typeof k === 'string' || typeof k === 'number') return k;
    if (typeof k === 'bigint') return Number(k);
    if (typeof k === 'boolean') return k ? 1 : 0;
    return fail('dict key of unsupported type');
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const textInt = (s: string): PyValue => {
    const t = s.replace(/L$/, '');
    if (t === '00') return false; // protocol 0 writes False as I00
    if (t === '01') return true;
    const v = BigInt(t);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x6c: // LIST
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x64: {
        // DICT
        const items = popMark();
        const d: PyDict = new Map();
        for (let i = 0; i + 1 < items.length; i += 2) d.set(key(items[i]!), items[i + 1]!);
        stack.push(d);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        asList(top()).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        asList(top()).push(...items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        asDict(top()).set(key(k), v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = asDict(top());
        for (let i = 0; i + 1 < items.length; i += 2) d.set(key(items[i]!), items[i + 1]!);
        break;
      }
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(longFrom(take(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(longFrom(take(u32())));
        break;
      case 0x49: // INT (text)
      case 0x4c: // LONG (text)
        stack.push(textInt(line()));
        break;
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x46: // FLOAT (text)
        stack.push(Number(line()));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8.decode(take(u64())));
        break;
      case 0x56: // UNICODE (protocol 0: raw-unicode-escape text)
        stack.push(
          line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a: string | undefined, b: string | undefined) =>
            String.fromCodePoint(parseInt(a ?? b!, 16)),
          ),
        );
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1.decode(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(new Uint8Array(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(new Uint8Array(take(u32())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(new Uint8Array(take(u64())));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: // PUT (text)
        memo.set(Number(line()), top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET (text)
        const idx = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(idx)) fail(`memo key ${idx} missing`);
        stack.push(memo.get(idx)!);
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      default:
        fail(
          OPNAMES[op]
            ? `opcode ${OPNAMES[op]} builds Python objects, which this reader does not support`
            : `unknown opcode 0x${op.toString(16)} at byte ${pos - 1}`,
        );
    }
  }
}

/** Converts a decoded pickle to plain JSON-like values (dicts become objects). */
export function pyToJs(v: PyValue): unknown {
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[String(k)] = pyToJs(val);
    return o;
  }
  if (Array.isArray(v)) return v.map(pyToJs);
  return v;
}
