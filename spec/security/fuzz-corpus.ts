/**
 * Inputs for the live mutation fuzzer (fuzz.spec.ts): a corpus of valid client frames and short sequences, the
 * mutations applied to them, and the fast-check arbitraries that draw both.
 *
 * A mutation is data (kind + positions), applied by `mutate`, so fast-check can print, replay and shrink a failing
 * input, and a report can show the exact bytes that went out. Positions are drawn as plain naturals and taken
 * modulo the length at application time, so every mutation applies to every template.
 */
import fc from 'fast-check';

const frame = (command: string, headers: ReadonlyArray<readonly [string, string]>, body = ''): string =>
  `${command}\n${headers.map(([k, v]) => `${k}:${v}\n`).join('')}\n${body}\0`;

/** Opening frames of a connection: each version, heart-beat offers, credentials, odd but valid hosts. */
export const CONNECTS: readonly string[] = [
  frame('CONNECT', [
    ['accept-version', '1.2'],
    ['host', 'localhost'],
    ['heart-beat', '0,0'],
  ]),
  frame('STOMP', [
    ['accept-version', '1.1'],
    ['host', 'localhost'],
    ['heart-beat', '1000,1000'],
  ]),
  frame('CONNECT', []),
  frame('CONNECT', [
    ['accept-version', '1.0'],
    ['login', 'guest'],
    ['passcode', 'guest'],
  ]),
  frame('CONNECT', [
    ['accept-version', '1.0,1.1,1.2'],
    ['host', '/'],
    ['heart-beat', '10000,10000'],
    ['login', 'guest'],
    ['passcode', 'guest'],
  ]),
  frame('STOMP', [
    ['accept-version', '1.2'],
    ['host', '127.0.0.1'],
    ['heart-beat', '0,30000'],
  ]),
  frame('CONNECT', [
    ['accept-version', '1.1,1.2'],
    ['host', 'fz-tenant'],
    ['heart-beat', '60000,0'],
  ]),
  // A CONNECT with frames pipelined behind it, as stomp.py and some 1.0 clients send them.
  frame('CONNECT', [
    ['accept-version', '1.2'],
    ['host', 'localhost'],
  ]) +
    frame('SUBSCRIBE', [
      ['destination', '/topic/fz.a'],
      ['id', 'p0'],
      ['receipt', 'r-p0'],
    ]),
];

/** Frames of a CONNECTed session, alone and in the sequences real clients send. */
export const SESSION_FRAMES: readonly string[] = [
  frame(
    'SEND',
    [
      ['destination', '/topic/fz.a'],
      ['content-type', 'text/plain'],
    ],
    'hello',
  ),
  frame(
    'SEND',
    [
      ['destination', '/topic/fz.a.b'],
      ['content-length', '5'],
      ['receipt', 'r1'],
    ],
    'he\0lo',
  ),
  frame('SEND', [
    ['destination', '/queue/fz.q1'],
    ['content-length', '0'],
  ]),
  frame(
    'SEND',
    [
      ['destination', '/queue/fz.q1'],
      ['persistent', 'true'],
      ['x-custom', 'a\\cb\\nc\\\\d'],
    ],
    '{"n":1}',
  ),
  frame(
    'SEND',
    [
      ['destination', '/topic/fz.é'],
      ['receipt', 'r-utf8'],
    ],
    'héllo wörld ✓',
  ),
  // Most subscriptions and transactions open and close within one input, so a session that is sent the same
  // template twice lives on; s3 and s6 stay, so that MESSAGEs (and acks for them) reach the fuzzed sessions.
  frame('SUBSCRIBE', [
    ['destination', '/topic/fz.a'],
    ['id', 's1'],
    ['ack', 'auto'],
  ]) + frame('UNSUBSCRIBE', [['id', 's1']]),
  frame('SUBSCRIBE', [
    ['destination', '/topic/fz.*'],
    ['id', 's2'],
    ['receipt', 'r-s2'],
  ]) +
    frame('SEND', [['destination', '/topic/fz.x']], 'to s2') +
    frame('UNSUBSCRIBE', [
      ['id', 's2'],
      ['receipt', 'r-u2'],
    ]),
  frame('SUBSCRIBE', [
    ['destination', '/topic/fz.#'],
    ['id', 's3'],
    ['x-history', '5'],
  ]),
  frame('SUBSCRIBE', [
    ['destination', '/topic/fz.*.b.#'],
    ['id', 's4'],
  ]) + frame('UNSUBSCRIBE', [['id', 's4']]),
  frame('SUBSCRIBE', [
    ['destination', '/queue/fz.q1'],
    ['id', 's5'],
    ['ack', 'client'],
    ['prefetch-count', '3'],
  ]) +
    frame('SEND', [['destination', '/queue/fz.q1']], 'to s5') +
    frame('UNSUBSCRIBE', [
      ['id', 's5'],
      ['receipt', 'r-u5'],
    ]),
  frame('SUBSCRIBE', [
    ['destination', '/queue/fz.q1'],
    ['id', 's6'],
    ['ack', 'client-individual'],
  ]),
  frame('UNSUBSCRIBE', [['id', 's6']]),
  frame('ACK', [['id', '1']]),
  frame('NACK', [
    ['id', '2'],
    ['receipt', 'r-n2'],
  ]),
  frame('ACK', [
    ['message-id', 'x-1'],
    ['subscription', 's6'],
  ]),
  frame('BEGIN', [['transaction', 'tx1']]) + frame('ABORT', [['transaction', 'tx1']]),
  frame('BEGIN', [['transaction', 'tx3']]) +
    frame(
      'SEND',
      [
        ['destination', '/queue/fz.q1'],
        ['transaction', 'tx3'],
      ],
      'tx3',
    ) +
    frame('COMMIT', [
      ['transaction', 'tx3'],
      ['receipt', 'r-c3'],
    ]),
  frame('COMMIT', [
    ['transaction', 'tx1'],
    ['receipt', 'r-c1'],
  ]),
  frame('DISCONNECT', [['receipt', 'r-bye']]),
  // Sequences: a subscription then a message for it; a whole transaction; a client-ack round trip.
  frame('SUBSCRIBE', [
    ['destination', '/queue/fz.q2'],
    ['id', 's7'],
    ['ack', 'client-individual'],
  ]) +
    frame('SEND', [['destination', '/queue/fz.q2']], 'for s7') +
    frame('ACK', [['id', '1']]) +
    frame('UNSUBSCRIBE', [['id', 's7']]),
  frame('BEGIN', [['transaction', 'tx2']]) +
    frame(
      'SEND',
      [
        ['destination', '/topic/fz.a'],
        ['transaction', 'tx2'],
      ],
      'in tx',
    ) +
    frame('COMMIT', [
      ['transaction', 'tx2'],
      ['receipt', 'r-c2'],
    ]),
  frame('BEGIN', [['transaction', 'tx4']]) +
    frame('ACK', [
      ['id', '1'],
      ['transaction', 'tx4'],
    ]) +
    frame('ABORT', [['transaction', 'tx4']]),
  frame('SUBSCRIBE', [
    ['destination', '/topic/fz.b'],
    ['id', 's8'],
  ]) +
    frame(
      'SEND',
      [
        ['destination', '/topic/fz.b'],
        ['content-length', '3'],
      ],
      'abc',
    ) +
    frame('UNSUBSCRIBE', [['id', 's8']]),
  // Heart-beat EOLs between frames, LF and CRLF.
  '\n\r\n' + frame('SEND', [['destination', '/topic/fz.a']], 'after beats') + '\n',
];

/** Bytes that make parsers misbehave: frame and line ends, escapes, colons, stray CR, invalid UTF-8 starts. */
const SPECIAL_BYTES = [0x00, 0x0a, 0x0d, 0x3a, 0x5c, 0xff, 0xc3, 0x80, 0x20, 0x23, 0x2a, 0x2f] as const;

/** Header value escapes STOMP 1.2 §Value Encoding defines (\\ \n \r \c) and ones it makes fatal. */
const ESCAPES = ['\\', '\\x', '\\t', '\\r', '\\\\', '\\c', '\\n', '\\0', '\\u0041'] as const;

/** Invalid UTF-8: lone continuation, truncated sequences, overlong form, surrogate, past U+10FFFF. */
const BAD_UTF8: readonly (readonly number[])[] = [
  [0xff],
  [0x80],
  [0xc3, 0x28],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
];

/** Command names: other sides' frames, near misses, lower case, prototype keys, very long, empty. */
const COMMANDS = [
  'SEND',
  'send',
  'CONNECTED',
  'MESSAGE',
  'ERROR',
  'RECEIPT',
  'STOMP',
  'CONNECT',
  'SUBSCRIBE ',
  ' ACK',
  'NACKK',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '',
  'X'.repeat(300),
  'DISCONNECT\0',
] as const;

/** content-length values that lie, overflow or are not numbers (the true length is added as well). */
const LENGTHS = [
  '0',
  '1',
  '3',
  '7',
  '100',
  '65536',
  '4194304',
  '4194305',
  '999999999999999',
  '9999999999999999',
  '-1',
  '1e3',
  ' 5',
  '5 ',
  '',
  '0x10',
  '+5',
  '05',
] as const;

export type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly byte: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | { readonly kind: 'duplicate-header'; readonly line: number; readonly times: number }
  | { readonly kind: 'huge-header'; readonly bytes: number }
  | { readonly kind: 'escape'; readonly at: number; readonly escape: string }
  | { readonly kind: 'bad-utf8'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly kind: 'command'; readonly name: string }
  | { readonly kind: 'eol'; readonly mode: 'all-crlf' | 'one-crlf' | 'lone-cr' | 'strip-cr'; readonly at: number }
  | { readonly kind: 'content-length'; readonly value: string; readonly delta: number }
  | { readonly kind: 'truncate'; readonly keep: number };

/** One fuzz input: a template, what was done to it, and how it is cut into writes (or WebSocket messages). */
export interface FuzzInput {
  /** True: sent on a brand-new connection, so the template is a CONNECT (mutated like the rest). */
  readonly fresh: boolean;
  readonly template: number;
  /** A second template appended before mutating: mutations then cross frame boundaries. */
  readonly follow: number | undefined;
  readonly mutations: readonly Mutation[];
  /** Cut points (taken modulo the length); each piece is one write, or one WebSocket message. */
  readonly cuts: readonly number[];
  /** WebSocket only: pieces go as text messages (invalid UTF-8 in text is the transport's to refuse). */
  readonly text: boolean;
}

const position = fc.nat({ max: 1 << 20 });

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      at: position,
      byte: fc.oneof(fc.constantFrom(...SPECIAL_BYTES), fc.integer({ min: 0, max: 255 })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at: position,
      bytes: fc.array(fc.oneof(fc.constantFrom(...SPECIAL_BYTES), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: position, count: fc.integer({ min: 1, max: 16 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('duplicate-header' as const),
      line: fc.nat({ max: 16 }),
      times: fc.constantFrom(1, 2, 10, 200, 1200),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('huge-header' as const),
      bytes: fc.constantFrom(100, 4096, 10 * 1024 - 7, 10 * 1024, 10 * 1024 + 1, 70 * 1024),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('escape' as const), at: position, escape: fc.constantFrom(...ESCAPES) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('bad-utf8' as const), at: position, bytes: fc.constantFrom(...BAD_UTF8) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('command' as const),
      name: fc.oneof(fc.constantFrom(...COMMANDS), fc.string({ maxLength: 12 })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('eol' as const),
      mode: fc.constantFrom('all-crlf' as const, 'one-crlf' as const, 'lone-cr' as const, 'strip-cr' as const),
      at: position,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('content-length' as const),
      value: fc.constantFrom(...LENGTHS, 'true'),
      delta: fc.integer({ min: -3, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: position }) },
);

/**
 * One input. Most are mutated; about two in five are sent as the corpus has them, so sessions live long enough to
 * reach subscriptions, acks and transactions before the next mutation hits them.
 */
export const fuzzInputArb: fc.Arbitrary<FuzzInput> = fc.record({
  fresh: fc.oneof({ weight: 1, arbitrary: fc.constant(true) }, { weight: 4, arbitrary: fc.constant(false) }),
  template: fc.nat(),
  follow: fc.option(fc.nat(), { freq: 3 }).map((v) => v ?? undefined),
  mutations: fc.oneof(
    { weight: 2, arbitrary: fc.constant([] as Mutation[]) },
    { weight: 3, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) },
  ),
  cuts: fc.array(position, { maxLength: 4 }),
  text: fc.boolean(),
});

/** Just above the default maxFrameBytes (4 MiB + 64 KiB), so an input can still cross every frame limit. */
const MAX_INPUT_BYTES = 4 * 1024 * 1024 + 128 * 1024;

/** The bytes of an input, before cutting. */
export function inputBytes(input: FuzzInput): Buffer {
  const first = input.fresh ? pick(CONNECTS, input.template) : pick(SESSION_FRAMES, input.template);
  const second = input.follow === undefined ? '' : pick(SESSION_FRAMES, input.follow);
  let bytes: Buffer = Buffer.from(first + second, 'utf8');
  for (const m of input.mutations) {
    bytes = mutate(bytes, m);
    // Past the largest frame a default node accepts, more bytes test nothing new; they only cost the fuzzer
    // (a 70 KiB header duplicated 1,200 times is 86 MB, and building it stalled this process for 200 ms).
    if (bytes.length > MAX_INPUT_BYTES) bytes = bytes.subarray(0, MAX_INPUT_BYTES);
  }
  return bytes;
}

/** The input as the writes (or WebSocket messages) that carry it. */
export function inputPieces(input: FuzzInput): Buffer[] {
  const bytes = inputBytes(input);
  if (bytes.length === 0) return [];
  const cuts = [...new Set(input.cuts.map((c) => c % bytes.length))].filter((c) => c > 0).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    pieces.push(bytes.subarray(from, c));
    from = c;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

function pick(list: readonly string[], index: number): string {
  return list[index % list.length] as string;
}

/** Start and end (exclusive, before the LF) of each header line: from after the command line to the blank line. */
function headerLines(bytes: Buffer): [number, number][] {
  const lines: [number, number][] = [];
  let start = bytes.indexOf(0x0a) + 1;
  if (start === 0) return lines;
  while (start < bytes.length) {
    const end = bytes.indexOf(0x0a, start);
    if (end === -1 || end === start || (end === start + 1 && bytes[start] === 0x0d)) break;
    lines.push([start, end]);
    start = end + 1;
  }
  return lines;
}

function splice(bytes: Buffer, at: number, remove: number, insert: Buffer | readonly number[] = []): Buffer {
  const middle = Buffer.isBuffer(insert) ? insert : Buffer.from(insert);
  return Buffer.concat([bytes.subarray(0, at), middle, bytes.subarray(Math.min(bytes.length, at + remove))]);
}

/** Applies one mutation; never throws, whatever the bytes. */
export function mutate(bytes: Buffer, m: Mutation): Buffer {
  const n = bytes.length;
  switch (m.kind) {
    case 'flip': {
      if (n === 0) return bytes;
      const out = Buffer.from(bytes);
      const i = m.at % n;
      out[i] = (out[i] as number) ^ (1 << m.bit);
      return out;
    }
    case 'set': {
      if (n === 0) return bytes;
      const out = Buffer.from(bytes);
      out[m.at % n] = m.byte;
      return out;
    }
    case 'insert':
      return splice(bytes, m.at % (n + 1), 0, m.bytes);
    case 'delete':
      return n === 0 ? bytes : splice(bytes, m.at % n, m.count);
    case 'duplicate-header': {
      const lines = headerLines(bytes);
      const line = lines[m.line % Math.max(1, lines.length)];
      if (line === undefined) return bytes;
      const copy = bytes.subarray(line[0], line[1] + 1);
      const times = Math.min(m.times, Math.ceil(MAX_INPUT_BYTES / copy.length));
      return splice(bytes, line[1] + 1, 0, Buffer.concat(new Array<Buffer>(times).fill(copy)));
    }
    case 'huge-header': {
      const at = bytes.indexOf(0x0a) + 1;
      return splice(bytes, at === 0 ? n : at, 0, Buffer.from(`x-huge:${'v'.repeat(m.bytes)}\n`));
    }
    case 'escape': {
      // Into a header value when there is one, else anywhere.
      const lines = headerLines(bytes);
      const line = lines[m.at % Math.max(1, lines.length)];
      const at = line === undefined ? m.at % (n + 1) : line[1];
      return splice(bytes, at, 0, Buffer.from(m.escape, 'latin1'));
    }
    case 'bad-utf8':
      return splice(bytes, m.at % (n + 1), 0, m.bytes);
    case 'command': {
      const end = bytes.indexOf(0x0a);
      return splice(bytes, 0, end === -1 ? 0 : end, Buffer.from(m.name, 'utf8'));
    }
    case 'eol': {
      const lfs: number[] = [];
      for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) lfs.push(i);
      switch (m.mode) {
        case 'all-crlf':
          return Buffer.from(bytes.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
        case 'strip-cr':
          return Buffer.from(bytes.toString('latin1').replace(/\r/g, ''), 'latin1');
        case 'one-crlf': {
          const lf = lfs[m.at % Math.max(1, lfs.length)];
          return lf === undefined ? bytes : splice(bytes, lf, 0, [0x0d]);
        }
        case 'lone-cr':
          return splice(bytes, m.at % (n + 1), 0, [0x0d]);
        default: {
          const never: never = m.mode;
          return never;
        }
      }
    }
    case 'content-length': {
      // Replace the first content-length (or add one after the command line); `true` means the true length + delta.
      const text = bytes.toString('latin1');
      const blank = text.indexOf('\n\n');
      const bodyLength = blank === -1 ? 0 : Math.max(0, n - (blank + 2) - 1);
      const value = m.value === 'true' ? String(Math.max(0, bodyLength + m.delta)) : m.value;
      const found = /content-length:[^\n]*\n/.exec(text);
      if (found !== null) return splice(bytes, found.index, found[0].length, Buffer.from(`content-length:${value}\n`, 'latin1'));
      const at = bytes.indexOf(0x0a) + 1;
      return splice(bytes, at === 0 ? n : at, 0, Buffer.from(`content-length:${value}\n`, 'latin1'));
    }
    case 'truncate':
      return bytes.subarray(0, m.keep % (n + 1));
    default: {
      const never: never = m;
      return never;
    }
  }
}

/** Bytes as a JSON string (latin1, so every byte is one escaped character): how a report shows an input. */
export function showBytes(bytes: Buffer, max = 600): string {
  const shown = bytes.subarray(0, max);
  // Bytes above 0x7e as \xNN: JSON would print them raw, and most of them are invisible on a terminal.
  const text = JSON.stringify(shown.toString('latin1')).replace(/[\x7f-\xff]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16)}`);
  return text + (bytes.length > max ? ` …(+${bytes.length - max} bytes)` : '');
}
