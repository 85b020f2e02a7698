import { expect } from 'chai';
import { EMPTY_BODY, FRAME_ERRORS, FrameError, FrameParser, type Frame } from '../../frames/index.js';
import {
  ALL_FIXTURES,
  ERROR_FIXTURES,
  ESCAPE_FIXTURES,
  FRAMING_FIXTURES,
  HEADER_FIXTURES,
  bytes,
  chunkings,
  ev,
  parseChunks,
  recordingParser,
  type Fixture,
} from './fixtures.js';

/** Bytes pushed after the fixture: a valid frame and a heart-beat, which a stopped parser must ignore. */
const AFTERWARDS = bytes('SEND\n\nafter\0\n');

function checkFixture(fixture: Fixture): void {
  const fails = fixture.expect.at(-1)?.kind === 'error';
  for (const { label, chunks } of chunkings(fixture.bytes)) {
    const { events, parser } = parseChunks(chunks, fixture);
    expect(events, label).to.deep.equal(fixture.expect);
    expect(parser.stopped, `${label}: stopped`).to.equal(fails);
    if (fails) {
      parser.push(AFTERWARDS);
      expect(events, `${label}: after the error`).to.deep.equal(fixture.expect);
    }
  }
}

function suite(title: string, fixtures: readonly Fixture[]): void {
  describe(`frames › parser › ${title}`, () => {
    for (const fixture of fixtures) it(fixture.name, () => checkFixture(fixture));
  });
}

suite('framing', FRAMING_FIXTURES);
suite('headers', HEADER_FIXTURES);
suite('escapes', ESCAPE_FIXTURES);
suite('errors', ERROR_FIXTURES);

describe('frames › parser › fixtures', () => {
  it('covers every code in FRAME_ERRORS', () => {
    const seen = new Set(ALL_FIXTURES.flatMap((f) => f.expect.flatMap((e) => (e.kind === 'error' ? [e.code] : []))));
    expect([...seen].sort()).to.deep.equal(Object.values(FRAME_ERRORS).sort());
  });

  it('has unique names', () => {
    const names = ALL_FIXTURES.map((f) => f.name);
    expect(new Set(names).size).to.equal(names.length);
  });
});

describe('frames › parser › sink and lifecycle', () => {
  it('reports a FrameError with code, message and command', () => {
    const errors: FrameError[] = [];
    const parser = new FrameParser({ frame: () => expect.fail('no frame expected'), error: (e) => errors.push(e) });
    parser.push(bytes('SEND\n:x\n\n\0'));
    expect(errors).to.have.length(1);
    const [error] = errors;
    expect(error).to.be.an.instanceOf(FrameError).and.an.instanceOf(Error);
    expect(error?.name).to.equal('FrameError');
    expect(error?.code).to.equal('ERR_BAD_HEADER');
    expect(error?.command).to.equal('SEND');
    expect(error?.message).to.equal('header with an empty name');
  });

  it('works with a sink that has no heartbeat method', () => {
    const frames: Frame[] = [];
    const parser = new FrameParser({ frame: (f) => frames.push(f), error: (e) => expect.fail(e.message) });
    parser.push(bytes('\n\r\nSEND\n\nx\0\n\nSEND\n\ny\0'));
    expect(frames.map((f) => f.body.toString())).to.deep.equal(['x', 'y']);
    expect(parser.stopped).to.equal(false);
  });

  it('gives a frame without a body an empty body', () => {
    const frames: Frame[] = [];
    const parser = new FrameParser({ frame: (f) => frames.push(f), error: (e) => expect.fail(e.message) });
    parser.push(bytes('DISCONNECT\n\n\0'));
    expect(frames[0]?.body).to.equal(EMPTY_BODY);
  });

  it('keeps a body that arrived in one chunk as a view of that chunk, not a copy', () => {
    const frames: Frame[] = [];
    const parser = new FrameParser({ frame: (f) => frames.push(f), error: (e) => expect.fail(e.message) });
    const chunk = bytes('SEND\ncontent-length:5\n\nhello\0');
    parser.push(chunk);
    const body = frames[0]?.body;
    expect(body?.toString()).to.equal('hello');
    expect(body?.buffer).to.equal(chunk.buffer);
  });

  it('stops when the frame handler calls stop(), ignoring the rest of the chunk', () => {
    const bodies: string[] = [];
    const parser: FrameParser = new FrameParser({
      frame: (f) => {
        bodies.push(f.body.toString());
        parser.stop();
      },
      heartbeat: () => expect.fail('no heart-beat expected'),
      error: () => expect.fail('no error expected'),
    });
    parser.push(bytes('SEND\n\none\0\nSEND\n\ntwo\0'));
    parser.push(bytes('SEND\n\nthree\0'));
    expect(bodies).to.deep.equal(['one']);
    expect(parser.stopped).to.equal(true);
  });

  it('stops when the heartbeat handler calls stop()', () => {
    let beats = 0;
    const parser: FrameParser = new FrameParser({
      frame: () => expect.fail('no frame expected'),
      heartbeat: () => {
        beats += 1;
        parser.stop();
      },
      error: () => expect.fail('no error expected'),
    });
    parser.push(bytes('\n\n\nSEND\n\n\0'));
    expect(beats).to.equal(1);
    expect(parser.stopped).to.equal(true);
  });

  it('applies a version set inside the frame handler to the next frame in the same chunk', () => {
    const values: Array<string | undefined> = [];
    const parser: FrameParser = new FrameParser({
      frame: (f) => {
        values.push(f.headers.get('k'));
        if (f.command === 'CONNECT') parser.version = '1.0';
      },
      error: (e) => expect.fail(e.message),
    });
    parser.push(bytes('CONNECT\nk:a\\b\n\n\0SEND\nk:a\\tb\n\n\0'));
    expect(values).to.deep.equal(['a\\b', 'a\\tb']);
  });

  it('applies new limits from setLimits() to the next frame', () => {
    const { events, parser } = recordingParser({
      limits: { maxFrameBytes: 1000, maxBodyBytes: 1000, maxHeaders: 10, maxHeaderLineBytes: 100 },
    });
    parser.push(bytes('SEND\n\n', 'x'.repeat(50), '\0'));
    parser.setLimits({ maxFrameBytes: 1000, maxBodyBytes: 10, maxHeaders: 10, maxHeaderLineBytes: 100 });
    parser.push(bytes('SEND\n\n', 'x'.repeat(50), '\0'));
    expect(events).to.deep.equal([
      ev.frame('SEND', [], 'x'.repeat(50)),
      ev.error(FRAME_ERRORS.ERR_BODY_TOO_LARGE, 'frame body exceeds 10 bytes', 'SEND'),
    ]);
  });

  it('does not report a frame that has not ended', () => {
    const { events, parser } = recordingParser();
    parser.push(bytes('SEND\ndestination:/q\n\nhello'));
    expect(events).to.deep.equal([]);
    expect(parser.stopped).to.equal(false);
    parser.push(bytes('\0'));
    expect(events).to.deep.equal([ev.frame('SEND', [['destination', '/q']], 'hello')]);
  });

  it('ignores empty chunks', () => {
    const { events, parser } = recordingParser();
    for (const part of ['', 'SEND\n', '', '\n', '', 'x\0', '']) parser.push(Buffer.from(part));
    expect(events).to.deep.equal([ev.frame('SEND', [], 'x')]);
  });
});
