import { expect } from 'chai';
import { effectiveRoutes, parseRoutes, RouteTable, validateRoutes } from '../../broker/ports/routes.js';
import { routeChannels } from '../../bridge/redis-channels.js';

function channels(routes: string): NonNullable<ReturnType<typeof routeChannels>> {
  const table = new RouteTable(effectiveRoutes(parseRoutes(routes), { redis: true, kafka: false }));
  const made = routeChannels(table);
  if (made === undefined) throw new Error('no named channels');
  return made;
}

describe('redis named channels from the route table (bridge/redis-channels)', () => {
  const table = [
    '/topic/news.*=redis:news.{1};format=raw',
    '/topic/orders.**=redis:shop.orders.{1};format=json',
    '/topic/feed.*=redis:feed.{1}',
    '/topic/**=redis',
  ].join(',');

  it('publishes a matching destination of the vhost / on the channel its template names, in its format', () => {
    const c = channels(table);
    expect(c.outward('/', '/topic/news.sports')).to.deep.equal({ channel: 'news.sports', format: 'raw' });
    expect(c.outward('/', '/topic/orders.eu.42')).to.deep.equal({ channel: 'shop.orders.eu.42', format: 'json' });
    expect(c.outward('/', '/topic/feed.x')).to.deep.equal({ channel: 'feed.x', format: 'stompede' });
    expect(c.outward('/', '/redis/any.channel:name')).to.deep.equal({ channel: 'any.channel:name', format: 'raw' });
  });

  it('keeps other destinations and other vhosts on private channels', () => {
    const c = channels(table);
    expect(c.outward('/', '/topic/chat.room')).to.equal(undefined);
    expect(c.outward('/', '/topic/news.a.b')).to.equal(undefined);
    expect(c.outward('tenant', '/topic/news.sports')).to.equal(undefined);
  });

  it('maps a channel back to every destination that routes to it, the direct /redis/ prefix last', () => {
    const c = channels(table);
    expect(c.inward('news.sports')).to.deep.equal([
      { vhost: '/', destination: '/topic/news.sports', format: 'raw' },
      { vhost: '/', destination: '/redis/news.sports', format: 'raw' },
    ]);
    expect(c.inward('shop.orders.eu.42').map((t) => t.destination)).to.deep.equal(['/topic/orders.eu.42', '/redis/shop.orders.eu.42']);
    // `news.a.b` fits no `*` of /topic/news.*: only the direct prefix maps it.
    expect(c.inward('news.a.b').map((t) => t.destination)).to.deep.equal(['/redis/news.a.b']);
  });

  it('gives a wildcard subscription the channel glob its route implies, glob characters of the names escaped', () => {
    const c = channels(table);
    expect(c.pattern('/', '/topic/news.*')).to.equal('news.*');
    expect(c.pattern('/', '/topic/orders.#')).to.equal('shop.orders.*');
    expect(c.pattern('/', '/topic/orders.eu.*')).to.equal('shop.orders.eu.*');
    expect(c.pattern('/', '/redis/a[1]?.*')).to.equal('a\\[1\\]\\?.*');
    expect(c.pattern('/', '/topic/chat.*')).to.equal(undefined);
    expect(c.pattern('tenant', '/topic/news.*')).to.equal(undefined);
  });

  it('is undefined when no redis route names a channel', () => {
    const plain = new RouteTable(parseRoutes('/topic/**=redis,/queue/**=redis'));
    expect(routeChannels(plain)).to.equal(undefined);
  });

  it('refuses a redis channel template that leaves a wildcard out (its channel could not map back)', () => {
    const problems = validateRoutes(parseRoutes('/topic/news.*.*=redis:news.{2};format=raw,/topic/all.**=redis:all'), {
      redis: true,
      kafka: false,
    });
    expect(problems).to.deep.equal([
      'route "/topic/news.*.*": "news.{2}" must name every wildcard of the pattern (missing {1}), so that each channel maps back to one destination',
      'route "/topic/all.**": "all" must name every wildcard of the pattern (missing {1}), so that each channel maps back to one destination',
    ]);
  });
});
