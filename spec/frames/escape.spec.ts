import { expect } from 'chai';
import { escapeHeader, unescapeHeader } from '../../frames/index.js';

// In these strings `\\` is one backslash: the escaped form as it travels on the wire.

describe('frames › escape › unescapeHeader', () => {
  it('1.2 decodes \\r, \\n, \\c and \\\\', () => {
    expect(unescapeHeader('a\\rb\\nc\\cd\\\\e', '1.2')).to.equal('a\rb\nc:d\\e');
  });

  it('1.1 decodes \\n, \\c and \\\\', () => {
    expect(unescapeHeader('b\\nc\\cd\\\\e', '1.1')).to.equal('b\nc:d\\e');
  });

  it('1.1 treats \\r as undefined', () => {
    expect(unescapeHeader('a\\rb', '1.1')).to.equal(undefined);
  });

  it('treats escapes outside the table as undefined in 1.1 and 1.2', () => {
    for (const version of ['1.1', '1.2'] as const) {
      for (const raw of ['\\t', 'a\\tb', '\\N', '\\C', '\\R', '\\0', '\\ ', '\\:', 'ok\\', '\\', '\\\\\\']) {
        expect(unescapeHeader(raw, version), `${version} ${JSON.stringify(raw)}`).to.equal(undefined);
      }
    }
  });

  it('decodes in a single pass, so an escaped backslash never starts another escape', () => {
    expect(unescapeHeader('\\\\n', '1.2')).to.equal('\\n');
    expect(unescapeHeader('\\\\c\\\\r', '1.2')).to.equal('\\c\\r');
    expect(unescapeHeader('\\\\\\\\', '1.1')).to.equal('\\\\');
    expect(unescapeHeader('\\\\\\n', '1.1')).to.equal('\\\n');
  });

  it('1.0 returns the text unchanged, backslashes and all', () => {
    expect(unescapeHeader('a\\nb\\tc\\', '1.0')).to.equal('a\\nb\\tc\\');
  });

  it('leaves text without backslashes unchanged, colons and CRs included', () => {
    for (const version of ['1.0', '1.1', '1.2'] as const) {
      expect(unescapeHeader('http://h:1/é\r', version)).to.equal('http://h:1/é\r');
      expect(unescapeHeader('', version)).to.equal('');
    }
  });

  it('decodes escapes at the very start and end of the text', () => {
    expect(unescapeHeader('\\cmid\\c', '1.2')).to.equal(':mid:');
  });
});

describe('frames › escape › escapeHeader', () => {
  const tricky = 'a\rb\nc:d\\e';

  it('1.2 encodes CR, LF, colon and backslash', () => {
    expect(escapeHeader(tricky, '1.2')).to.equal('a\\rb\\nc\\cd\\\\e');
  });

  it('1.1 encodes LF, colon and backslash, and has no escape for CR', () => {
    expect(escapeHeader(tricky, '1.1')).to.equal('a\rb\\nc\\cd\\\\e');
  });

  it('1.0 sends text as it is, except CR and LF, which 1.0 cannot carry and become spaces', () => {
    expect(escapeHeader(tricky, '1.0')).to.equal(tricky.replace(/[\r\n]/g, ' '));
    expect(escapeHeader('x:a\nfake:injected', '1.0')).to.equal('x:a fake:injected');
  });

  it('returns text that needs no escaping unchanged', () => {
    for (const version of ['1.0', '1.1', '1.2'] as const) {
      expect(escapeHeader('/queue/café 🎉', version)).to.equal('/queue/café 🎉');
    }
  });

  it('1.1 does not touch a CR when nothing else needs escaping', () => {
    expect(escapeHeader('a\rb', '1.1')).to.equal('a\rb');
    expect(escapeHeader('a\rb', '1.2')).to.equal('a\\rb');
  });

  it('keeps multi-byte and astral characters around escapes', () => {
    expect(escapeHeader('é:🎉\n日', '1.2')).to.equal('é\\c🎉\\n日');
  });

  it('round-trips the tricky text in 1.2, and in 1.1 without the CR', () => {
    expect(unescapeHeader(escapeHeader(tricky, '1.2'), '1.2')).to.equal(tricky);
    expect(unescapeHeader(escapeHeader('b\nc:d\\e', '1.1'), '1.1')).to.equal('b\nc:d\\e');
  });
});
