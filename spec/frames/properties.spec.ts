import { expect } from 'chai';
import fc from 'fast-check';
import {
  DEFAULT_FRAME_LIMITS,
  FRAME_ERRORS,
  VERSIONS,
  encodeFrame,
  escapeHeader,
  unescapeHeader,
  type FrameErrorCode,
  type FrameLimits,
  type StompVersion,
} from '../../frames/index.js';
import { ev, parseChunks, splitAt, type ParseEvent } from './fixtures.js';

// Run counts: large enough to reach the parser's corners (split escapes, CR at a chunk edge, limits crossed mid-line),
// small enough that the whole file runs in a few seconds.
const RUNS = 400;

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

const version = fc.constantFrom(...VERSIONS);

/** Offsets to cut a byte string at; splitAt clamps them, so any naturals do. */
const cuts = fc.array(fc.nat({ max: 600 }), { maxLength: 12 });

/** Small limits, so random input crosses them often; sometimes the defaults. */
const limits: fc.Arbitrary<FrameLimits> = fc.oneof(
  fc.record({
    maxFrameBytes: fc.integer({ min: 2, max: 160 }),
    maxBodyBytes: fc.integer({ min: 0, max: 60 }),
    maxHeaders: fc.integer({ min: 0, max: 6 }),
    maxHeaderLineBytes: fc.integer({ min: 0, max: 40 }),
  }),
  fc.constant(DEFAULT_FRAME_LIMITS),
);

/** Byte strings made mostly of STOMP-shaped pieces, so that the parser gets past the command line often. */
const stompishBytes: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      fc
        .constantFrom(
          'SEND\n',
          'MESSAGE\n',
          'CONNECT\n',
          'STOMP\n',
          'ERROR\r\n',
          'destination:/q\n',
          'a:b\n',
          'content-length:',
          'content-length:3\n',
          'content-length:0\n',
          '1',
          '12',
          '-1',
          ':',
          '\\',
          '\\n',
          '\\c',
          '\\r',
          '\\t',
          '\\\\',
          '\n',
          '\n',
          '\r\n',
          '\r',
          '\0',
          '\0',
          'x',
          'é',
          '🎉',
        )
        .map((s) => Buffer.from(s)),
      fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.concat(parts));

const anyBytes = fc.oneof(
  stompishBytes,
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
);

/** Characters that matter to escaping, mixed with any Unicode code point (never a lone surrogate). */
const char = fc.oneof(
  fc.constantFrom('\\', ':', '\n', '\r', ' ', 'c', 'n', 'r', 'é', '🎉'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const text = (exclude: RegExp, minLength = 0): fc.Arbitrary<string> =>
  fc.string({ unit: char.filter((c) => !exclude.test(c)), minLength, maxLength: 12 });

const COMMANDS = [
  'SEND',
  'MESSAGE',
  'ERROR',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'ACK',
  'RECEIPT',
  'DISCONNECT',
  'CONNECT',
  'STOMP',
  'CONNECTED',
] as const;
const WITH_BODY = new Set<string>(['SEND', 'MESSAGE', 'ERROR']);
const UNESCAPED = new Set<string>(['CONNECT', 'STOMP', 'CONNECTED']);

interface GeneratedFrame {
  readonly command: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** EOLs the peer sends after the frame's NUL. */
  readonly eols: readonly string[];
}

/**
 * A frame the encoder can represent in `v`: 1.2 escapes everything; 1.1 has no escape for CR; 1.0 and the CONNECT
 * family have none at all, so there names carry no colon and nothing carries CR or LF.
 */
function frameFor(v: StompVersion): fc.Arbitrary<GeneratedFrame> {
  return fc.constantFrom(...COMMANDS).chain((command) => {
    const raw = v === '1.0' || UNESCAPED.has(command);
    const noValue = raw ? /[\r\n]/ : v === '1.1' ? /\r/ : /$^/;
    const noName = raw ? /[\r\n:]/ : noValue;
    // A few fixed names make repeated headers common, so first-wins is exercised.
    const name = fc.oneof(fc.constantFrom('destination', 'id', 'x'), text(noName, 1));
    const header = fc.tuple(name, text(noValue)).filter(([n]) => n !== 'content-length');
    return fc.record({
      command: fc.constant(command),
      headers: fc.array(header, { maxLength: 5 }),
      body: WITH_BODY.has(command) ? fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) : fc.constant(Buffer.alloc(0)),
      eols: fc.array(fc.constantFrom('\n', '\r\n'), { maxLength: 2 }),
    });
  });
}

const encodedStream = version.chain((v) => fc.record({ version: fc.constant(v), frames: fc.array(frameFor(v), { maxLength: 6 }) }));

function encodeAll(v: StompVersion, frames: readonly GeneratedFrame[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => [encodeFrame(f.command, f.headers, f.body, v), Buffer.from(f.eols.join(''))]));
}

/** What the parser must report for one generated frame: first header wins; the encoder's content-length last. */
function expectedEvents(f: GeneratedFrame): ParseEvent[] {
  const withLength = f.command === 'MESSAGE' || f.command === 'ERROR' || f.body.length > 0;
  const all = withLength ? [...f.headers, ['content-length', String(f.body.length)] as const] : f.headers;
  const firstWins = new Map<string, string>();
  for (const [name, value] of all) if (!firstWins.has(name)) firstWins.set(name, value);
  return [ev.frame(f.command, [...firstWins], f.body), ...f.eols.map(() => ev.heartbeat)];
}

// ---------------------------------------------------------------------------------------------------------------

describe('frames › properties › parser', () => {
  it('never throws on arbitrary bytes in arbitrary chunks, and reports at most one error, last', () => {
    fc.assert(
      fc.property(anyBytes, cuts, version, limits, (bytes, at, v, l) => {
        const { events, parser } = parseChunks(splitAt(bytes, at), { version: v, limits: l });
        const errors = events.filter((e) => e.kind === 'error');
        expect(errors.length).to.be.at.most(1);
        if (errors.length === 1) expect(events.at(-1)?.kind).to.equal('error');
        expect(parser.stopped).to.equal(errors.length === 1);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('reports the same frames, heart-beats and error for arbitrary bytes however they are chunked', () => {
    fc.assert(
      fc.property(anyBytes, cuts, version, limits, (bytes, at, v, l) => {
        const whole = parseChunks([bytes], { version: v, limits: l }).events;
        expect(parseChunks(splitAt(bytes, at), { version: v, limits: l }).events).to.deep.equal(whole);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('reads back an encoded frame sequence exactly, however it is chunked', () => {
    fc.assert(
      fc.property(encodedStream, cuts, ({ version: v, frames }, at) => {
        const bytes = encodeAll(v, frames);
        const expected = frames.flatMap(expectedEvents);
        expect(parseChunks([bytes], { version: v }).events).to.deep.equal(expected);
        expect(parseChunks(splitAt(bytes, at), { version: v }).events).to.deep.equal(expected);
      }),
      { numRuns: RUNS },
    );
  });

  it('reads back an encoded frame sequence fed one byte at a time', () => {
    fc.assert(
      fc.property(encodedStream, ({ version: v, frames }) => {
        const bytes = encodeAll(v, frames);
        const single = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
        expect(parseChunks(single, { version: v }).events).to.deep.equal(frames.flatMap(expectedEvents));
      }),
      { numRuns: RUNS / 4 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Limits

interface Crossing {
  /** 1-based offset of the byte that crosses the limit, within the frame. */
  readonly at: number;
  /** The parser's order of checks when two limits fall on the same byte. */
  readonly rank: number;
  readonly code: FrameErrorCode;
}

/**
 * The error an LF-encoded frame must produce under `l`, or undefined when it fits: of every limit it crosses, the
 * one crossed at the earliest byte. Frame bytes run from the command to the body; the NUL is not counted.
 */
function limitError(encoded: Buffer, l: FrameLimits): FrameErrorCode | undefined {
  const crossings: Crossing[] = [];
  const headEnd = encoded.indexOf('\n\n') + 2; // the encoder writes LF only, and escapes or forbids LF in headers
  let start = 0;
  let headers = 0;
  while (start < headEnd - 1) {
    const lf = encoded.indexOf(0x0a, start);
    const length = lf - start;
    const code = start === 0 ? FRAME_ERRORS.ERR_BAD_COMMAND : FRAME_ERRORS.ERR_HEADER_TOO_LONG;
    if (length > l.maxHeaderLineBytes) crossings.push({ at: start + l.maxHeaderLineBytes + 2, rank: 0, code });
    if (start > 0 && ++headers > l.maxHeaders) crossings.push({ at: lf + 1, rank: 2, code: FRAME_ERRORS.ERR_TOO_MANY_HEADERS });
    start = lf + 1;
  }
  const bodyLength = encoded.length - 1 - headEnd;
  if (bodyLength > l.maxBodyBytes) crossings.push({ at: headEnd + l.maxBodyBytes + 1, rank: 0, code: FRAME_ERRORS.ERR_BODY_TOO_LARGE });
  if (encoded.length - 1 > l.maxFrameBytes) {
    // A frame limit crossed in the body of a content-length frame is found up front, at the blank line, like the body limit.
    crossings.push({ at: l.maxFrameBytes + 1, rank: 1, code: FRAME_ERRORS.ERR_FRAME_TOO_LARGE });
  }
  crossings.sort((a, b) => a.at - b.at || a.rank - b.rank);
  return crossings[0]?.code;
}

describe('frames › properties › limits', () => {
  it('emits only frames within the limits, and stops at the first frame beyond them with the limit it crosses first', () => {
    fc.assert(
      fc.property(encodedStream, limits, cuts, ({ version: v, frames }, l, at) => {
        const expected: ParseEvent[] = [];
        for (const f of frames) {
          const code = limitError(encodeFrame(f.command, f.headers, f.body, v), l);
          if (code !== undefined) {
            expected.push({ kind: 'error', code, command: undefined, message: '' });
            break;
          }
          expected.push(...expectedEvents(f));
        }
        const { events } = parseChunks(splitAt(encodeAll(v, frames), at), { version: v, limits: l });
        // The error's message and command are the fixtures' business; here only its code is compared.
        const comparable = events.map((e) => (e.kind === 'error' ? { ...e, command: undefined, message: '' } : e));
        expect(comparable).to.deep.equal(expected);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('never emits a frame over the limits from arbitrary bytes', () => {
    fc.assert(
      fc.property(anyBytes, cuts, version, limits, (bytes, at, v, l) => {
        const { events } = parseChunks(splitAt(bytes, at), { version: v, limits: l });
        for (const e of events) {
          if (e.kind !== 'frame') continue;
          // Unescaping only shrinks text and repeated headers are dropped, so these sums are lower bounds of what arrived.
          const lines = e.headers.map(([name, value]) => Buffer.byteLength(name) + 1 + Buffer.byteLength(value));
          expect(Buffer.byteLength(e.command)).to.be.at.most(l.maxHeaderLineBytes);
          for (const line of lines) expect(line).to.be.at.most(l.maxHeaderLineBytes);
          expect(e.headers.length).to.be.at.most(l.maxHeaders);
          expect(e.body.length).to.be.at.most(l.maxBodyBytes);
          const frameBytes = Buffer.byteLength(e.command) + 1 + lines.reduce((sum, n) => sum + n + 1, 0) + 1 + e.body.length;
          expect(frameBytes).to.be.at.most(l.maxFrameBytes);
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('frames › properties › escaping', () => {
  const anyText = fc.string({ unit: char, maxLength: 40 });

  it('1.2 round-trips any string, leaving no CR, LF or colon on the wire', () => {
    fc.assert(
      fc.property(anyText, (s) => {
        const wire = escapeHeader(s, '1.2');
        expect(wire).to.not.match(/[\r\n:]/);
        expect(unescapeHeader(wire, '1.2')).to.equal(s);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('1.1 round-trips any string without CR, leaving no LF or colon on the wire', () => {
    fc.assert(
      fc.property(fc.string({ unit: char.filter((c) => c !== '\r'), maxLength: 40 }), (s) => {
        const wire = escapeHeader(s, '1.1');
        expect(wire).to.not.match(/[\n:]/);
        expect(unescapeHeader(wire, '1.1')).to.equal(s);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('1.0 passes any string through both ways unchanged, but for CR/LF sent as spaces', () => {
    fc.assert(
      fc.property(anyText, (s) => {
        expect(escapeHeader(s, '1.0')).to.equal(s.replace(/[\r\n]/g, ' '));
        expect(unescapeHeader(s, '1.0')).to.equal(s);
      }),
      { numRuns: RUNS },
    );
  });

  it('unescapes either to undefined or to a string no longer than the input, in every version', () => {
    fc.assert(
      fc.property(anyText, version, (s, v) => {
        const out = unescapeHeader(s, v);
        if (out !== undefined) expect(out.length).to.be.at.most(s.length);
        // An undefined result means an escape the version does not define: a backslash must be involved.
        else expect(s).to.include('\\');
      }),
      { numRuns: RUNS },
    );
  });
});
