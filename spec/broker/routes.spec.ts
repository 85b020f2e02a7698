import { expect } from 'chai';
import { loadConfig } from '../../broker/config.js';
import { startBroker } from '../support/broker.js';
import { connectedTcp, stompFrame } from '../support/raw.js';
import {
  destinationFor,
  effectiveRoutes,
  parseRoutes,
  RouteTable,
  routeText,
  targetFor,
  targetRegex,
  validateRoutes,
  type Route,
} from '../../broker/ports/routes.js';

const ENGINES = { redis: true, kafka: true };

function problemsOf(text: string): string[] {
  return validateRoutes(parseRoutes(text), ENGINES);
}

/** What loadConfig says about a routes flag: every problem, or [] for a table it accepts. */
function configProblems(routes: string): string[] {
  try {
    loadConfig({ env: { STOMPEDE_ROUTES: routes, STOMPEDE_REDIS: 'redis://127.0.0.1:6379', STOMPEDE_KAFKA: '127.0.0.1:9092' } });
    return [];
  } catch (error) {
    return (error as { problems?: string[] }).problems ?? [String(error)];
  }
}

describe('broker › route grammar', () => {
  it('parses kind, target and options, and fills templates with what each wildcard matched', () => {
    const [orders, chat, news, local] = parseRoutes(
      '/topic/orders.*=kafka:orders.{1},/topic/chat.**=kafka:chat;format=stompede;destination=key,' +
        '/topic/news.*=redis:news.{1};format=raw,/queue/**=local',
    ) as [Route, Route, Route, Route];
    expect(orders).to.deep.equal({ pattern: '/topic/orders.*', kind: 'kafka', target: 'orders.{1}' });
    expect(chat.options).to.deep.equal({ format: 'stompede', destination: 'key' });
    expect(news).to.deep.equal({ pattern: '/topic/news.*', kind: 'redis', target: 'news.{1}', options: { format: 'raw' } });
    expect(local).to.deep.equal({ pattern: '/queue/**', kind: 'local' });
    expect(targetFor(orders, '/topic/orders.eu')).to.equal('orders.eu');
    expect(targetFor(chat, '/topic/chat.room.1')).to.equal('chat');
    const two: Route = { pattern: '/topic/*.by.**', kind: 'kafka', target: '{2}-{1}' };
    expect(targetFor(two, '/topic/eu.by.a.b')).to.equal('a.b-eu');
  });

  it('maps a target back to its one destination, and to none when many destinations share it', () => {
    const orders: Route = { pattern: '/topic/orders.*', kind: 'kafka', target: 'orders.{1}' };
    expect(destinationFor(orders, 'orders.eu')).to.equal('/topic/orders.eu');
    expect(destinationFor(orders, 'invoices.eu')).to.equal(undefined);
    // `*` is one segment: a topic with a further dot is not one of this route's.
    expect(destinationFor(orders, 'orders.eu.x')).to.equal(undefined);
    expect(destinationFor({ pattern: '/topic/chat.**', kind: 'kafka', target: 'chat' }, 'chat')).to.equal(undefined);
    expect(destinationFor({ pattern: '/kafka/**', kind: 'kafka', target: '{1}' }, 'orders')).to.equal('/kafka/orders');
    expect(destinationFor({ pattern: '/topic/*.by.**', kind: 'kafka', target: '{2}-{1}' }, 'a.b-eu')).to.equal('/topic/eu.by.a.b');
    expect(targetRegex(orders)?.test('orders.eu')).to.equal(true);
    expect(targetRegex(orders)?.test('orders')).to.equal(false);
  });

  it('refuses bad tables with one clear message each', () => {
    expect(problemsOf('/topic/**=kafka:a:b')).to.deep.equal([
      'route "/topic/**": "a:b" is not a valid Kafka topic name (":" is not allowed; one target per route)',
    ]);
    expect(problemsOf('/topic/*.*=kafka:x.{3}')).to.deep.equal([
      'route "/topic/*.*": {3} in "x.{3}" names wildcard 3, but the pattern has 2',
    ]);
    expect(problemsOf('/topic/*=kafka:bad/name.{1}')[0]).to.match(/"bad\/name\.\{1\}" is not a valid Kafka topic name/);
    expect(problemsOf('/topic/*=kafka:t;format=raw')).to.deep.equal([
      'route "/topic/*": format=raw does not apply to kafka routes (use native or stompede)',
    ]);
    expect(problemsOf('/topic/**=kafka')).to.deep.equal(['route "/topic/**": a kafka route needs a topic (pattern=kafka:<topic>)']);
    expect(problemsOf('/queue/**=local:x')).to.deep.equal(['route "/queue/**": a local route has no target ("local:x")']);
    expect(validateRoutes(parseRoutes('/topic/**=kafka:t'), { redis: false, kafka: false })).to.deep.equal([
      'route "/topic/**": routes to kafka, but no --kafka brokers are configured',
    ]);
  });

  it('reports unknown options and bad option values at load, with the setting named', () => {
    expect(configProblems('/topic/**=kafka:t;colour=red')).to.have.length(1);
    expect(configProblems('/topic/**=kafka:t;colour=red')[0]).to.include('unknown route option "colour"');
    expect(configProblems('/topic/**=kafka:t;format=xml')[0]).to.include('format must be one of stompede, native, raw, json, not "xml"');
    expect(configProblems('/topic/**=kafka:t;destination=header')[0]).to.include('destination must be one of mapping, key');
    expect(configProblems('/topic/**=kafka:a:b')[0]).to.include('"a:b" is not a valid Kafka topic name');
    expect(configProblems('/topic/orders.*=kafka:orders.{1};destination=key')).to.deep.equal([]);
  });

  it('prints effective routes in the same grammar, direct-addressing routes first', () => {
    const routes = effectiveRoutes([], ENGINES).map(routeText);
    expect(routes).to.deep.equal([
      '/kafka/**=kafka:{1};format=native;destination=mapping',
      '/redis/**=redis:{1};format=raw',
      '/topic/**=kafka:stompede.topics;format=stompede;destination=key',
      '/queue/**=kafka:stompede.queues;format=stompede;destination=key',
    ]);
    // Printed text parses back to the same table.
    expect(parseRoutes(routes.join(',')).map(routeText)).to.deep.equal(routes);
  });

  it('says why a destination cannot be routed: a missing engine, or a filled-in topic Kafka would refuse', () => {
    const none = new RouteTable(effectiveRoutes([], { redis: false, kafka: false }));
    expect(none.problem('/kafka/orders')).to.match(/addresses kafka directly, but this node has no kafka engine/);
    expect(none.problem('/redis/news')).to.match(/addresses redis directly, but this node has no redis engine/);
    expect(none.problem('/topic/x')).to.equal(undefined);
    const kafka = new RouteTable(effectiveRoutes(parseRoutes('/topic/**=kafka:t.{1}'), { redis: false, kafka: true }));
    expect(kafka.problem('/topic/ok')).to.equal(undefined);
    expect(kafka.problem('/topic/not/ok')).to.match(/maps to Kafka topic "t.not\/ok".*not a valid topic name/);
    expect(kafka.problem('/kafka/orders')).to.equal(undefined);
    expect(kafka.problem('/kafka/orders', 'chat')).to.match(/native Kafka route \(\/kafka\/\*\*\), which serves the virtual host \/ only/);
    expect(kafka.problem('/kafka/orders', '/')).to.equal(undefined);
  });

  it('answers a SEND to /kafka/<topic> on a node without Kafka with an ERROR naming the missing engine', async () => {
    const node = await startBroker({});
    try {
      const c = await connectedTcp(node.tcpPort);
      c.send(stompFrame('SEND', { destination: '/kafka/orders' }, 'x'));
      const error = await c.nextFrame(5_000);
      expect(error.command).to.equal('ERROR');
      expect(error.body.toString()).to.include('this node has no kafka engine configured (--kafka)');
      c.close();
    } finally {
      await node.close();
    }
  });
});
