/**
 * The permission glob grammar (docs/security.md): segments split on `.` or `/`, `*` one segment, `**` any run.
 * Wildcard topic subscriptions are allowed only when an allow rule contains them and no deny rule overlaps them.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { parseDestination } from '../../broker/destinations.js';
import { allowsName, allowsRead, compileGlob, parseRights, type Rule } from '../../broker/permissions.js';

const rule = (allow: string[], deny: string[] = []): Rule => ({
  allow: allow.map((g) => compileGlob(g)),
  deny: deny.map((g) => compileGlob(g)),
});
const read = (r: Rule, destination: string): boolean => allowsRead(r, parseDestination(destination));

describe('security › permission globs', () => {
  const cases: ReadonlyArray<readonly [string, string, boolean]> = [
    ['/topic/chat.**', '/topic/chat', true],
    ['/topic/chat.**', '/topic/chat.room1', true],
    ['/topic/chat.**', '/topic/chat.room1.en', true],
    ['/topic/chat.**', '/topic/chatter', false],
    ['/topic/chat.**', '/queue/chat.room1', false],
    ['/queue/bob.*', '/queue/bob.inbox', true],
    ['/queue/bob.*', '/queue/bob', false],
    ['/queue/bob.*', '/queue/bob.inbox.old', false],
    ['/queue/bob.*', '/queue/bobby.inbox', false],
    ['**', '/kafka/orders', true],
    ['/redis/*', '/redis/events', true],
    ['/topic/a/*', '/topic/a.b', true], // `.` and `/` both separate segments
    ['/topic/**.x', '/topic/a.b.c.x', true],
    ['/topic/**.x', '/topic/x', true],
    ['/topic/**.x.**.y', '/topic/x.y', true],
    ['/topic/**.x.**.y', '/topic/y.x', false],
    ['/topic/chat.secret', '/topic/chat.secret', true],
    ['/topic/chat.sec*', '/topic/chat.secret', false], // anything but a whole `*` segment is literal
  ];
  for (const [glob, destination, expected] of cases) {
    it(`${glob} ${expected ? 'matches' : 'does not match'} ${destination}`, () => {
      expect(allowsName(rule([glob]), destination)).to.equal(expected);
    });
  }

  it('lets deny win over allow', () => {
    const r = rule(['/topic/chat.**'], ['/topic/chat.secret']);
    expect(allowsName(r, '/topic/chat.lobby')).to.equal(true);
    expect(allowsName(r, '/topic/chat.secret')).to.equal(false);
  });

  it('matches 30 `**` against 200 segments without backtracking blow-up (< 50 ms)', () => {
    const glob = '/topic/' + Array.from({ length: 30 }, () => '**').join('.a.') + '.z';
    const destination = '/topic/' + Array.from({ length: 200 }, () => 'a').join('.');
    const started = performance.now();
    expect(allowsName(rule([glob]), destination)).to.equal(false);
    expect(performance.now() - started).to.be.below(50);
  });

  it('agrees with a regular-expression reading of the grammar on random globs and names', () => {
    const seg = fc.constantFrom('a', 'b', 'c');
    const globPart = fc.constantFrom('a', 'b', '*', '**');
    fc.assert(
      fc.property(
        fc.array(globPart, { minLength: 1, maxLength: 6 }),
        fc.array(seg, { minLength: 1, maxLength: 7 }),
        fc.constantFrom('.', '/'),
        (parts, segs, sep) => {
          const glob = parts.join('.');
          const name = segs.join(sep);
          // Reference: every segment followed by a separator, `*` one segment, `**` zero or more whole segments.
          const source = parts.map((p) => (p === '**' ? '(?:[^./]*[./])*' : p === '*' ? '[^./]*[./]' : `${p}[./]`)).join('');
          const expected = new RegExp(`^${source}$`).test(name + '.');
          expect(allowsName(rule([glob]), name), `${glob} vs ${name}`).to.equal(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  describe('wildcard subscriptions', () => {
    it('are allowed when an allow rule contains every name they can match', () => {
      const r = rule(['/topic/chat.**']);
      expect(read(r, '/topic/chat.*')).to.equal(true);
      expect(read(r, '/topic/chat.#')).to.equal(true);
      expect(read(r, '/topic/chat.*.en')).to.equal(true);
      expect(read(r, '/topic/#')).to.equal(false);
      expect(read(r, '/topic/*.room1')).to.equal(false);
    });

    it('treat rule `*` as containing a literal or `*` segment but not `#`', () => {
      const r = rule(['/topic/chat.*']);
      expect(read(r, '/topic/chat.*')).to.equal(true);
      expect(read(r, '/topic/chat.room1')).to.equal(true);
      expect(read(r, '/topic/chat.#')).to.equal(false);
      expect(read(r, '/topic/chat.*.*')).to.equal(false);
    });

    it('are refused when a deny rule overlaps them, even partly', () => {
      const r = rule(['/topic/**'], ['/topic/chat.secret']);
      expect(read(r, '/topic/chat.*')).to.equal(false);
      expect(read(r, '/topic/#')).to.equal(false);
      expect(read(r, '/topic/*.secret')).to.equal(false);
      expect(read(r, '/topic/chat.room.*')).to.equal(true);
      expect(read(r, '/topic/news.#')).to.equal(true);
    });

    it('count a `*` word as possibly several `/` segments when checking deny rules (the safe side)', () => {
      const r = rule(['/topic/**'], ['/topic/chat.a.secret']);
      // `/topic/chat.*` receives `/topic/chat.a/secret` (one topic word), which the deny rule names.
      expect(read(r, '/topic/chat.*')).to.equal(false);
    });
  });

  describe('parsing', () => {
    it('reads the shorthand list and the {allow, deny} form', () => {
      const rights = parseRights(
        { admin: true, vhosts: { '/': { read: ['**'], write: { allow: ['/topic/**'], deny: ['/topic/x'] } } } },
        'u',
      );
      expect(rights.admin).to.equal(true);
      const v = rights.vhosts?.get('/');
      expect(v?.read.allow.map((g) => g.source)).to.deep.equal(['**']);
      expect(v?.write.deny.map((g) => g.source)).to.deep.equal(['/topic/x']);
    });

    it('grants nothing for a missing read or write', () => {
      const v = parseRights({ vhosts: { '/': { read: ['**'] } } }, 'u').vhosts?.get('/');
      expect(v?.write.allow).to.deep.equal([]);
    });

    for (const [label, value, message] of [
      ['an unknown key', { vhosts: {}, extra: 1 }, 'u: unknown key "extra"'],
      ['an empty glob', { vhosts: { '/': { read: [''] } } }, 'u.vhosts["/"].read[0]: a glob must be a non-empty string'],
      [
        'a non-list',
        { vhosts: { '/': { read: '**' } } },
        'u.vhosts["/"].read: expected a list of globs or {"allow": [...], "deny": [...]}',
      ],
      ['a non-boolean admin', { admin: 'yes' }, 'u.admin: expected true or false'],
    ] as const) {
      it(`refuses ${label} with a TypeError naming where`, () => {
        expect(() => parseRights(value, 'u')).to.throw(TypeError, message);
      });
    }
  });
});
