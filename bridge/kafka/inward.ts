import type { KafkaMessage } from 'kafkajs';
import type { HistoryRecord } from '../../broker/ports/history.js';
import type { Logger } from '../../broker/ports/logger.js';
import {
  destinationFor,
  isTemplate,
  routeFormat,
  targetFor,
  targetRegex,
  type CompiledRoute,
  type RouteTable,
} from '../../broker/ports/routes.js';
import {
  decodeNativeRecord,
  decodeRecord,
  encodeNativeRecord,
  encodeRecord,
  recordDestination,
  type DropReason,
  type EncodedRecord,
} from '../kafka-codec.js';
import type { PublishInput } from '../../broker/ports/bus.js';

const DIRECT_KAFKA = '/kafka/';

/** Each reason of dropped records is logged at most this often (the counter has every one). */
const LOG_EVERY_MS = 60_000;

/**
 * The node's Kafka routes, record by record: which topic and format a SEND becomes (outward), and which
 * destination a consumed record reaches (inward).
 *
 * Inward, a topic belongs to the first kafka route that names it literally, else the first template route whose
 * topics it fits, else direct addressing (`/kafka/<topic>`). The destination is the one the route maps the topic
 * back to (`destinationFor`), whatever the record's key or headers say. Two cases name several destinations per
 * topic, and take the one the record names, only when this route would send that destination to this very topic
 * (so a record cannot leave its route): routes with `destination=key` (the record key names it), and routes
 * whose target does not capture every wildcard (`/topic/chat.**=kafka:chat`: the destination Stompede wrote in
 * `stompede-destination`, else the key).
 * The vhost of a native record is `/`; private-format records (`format=stompede`, the default routes) keep theirs.
 */
export class RecordRouter {
  #table: RouteTable;
  #kafka: readonly CompiledRoute[];
  #byTopic = new Map<string, CompiledRoute | null>();
  /** The one destination a topic maps to (null: none, the record names it), per topic: a regex built per record cost 25 % of inward CPU. */
  #mappedByTopic = new Map<string, string | null>();
  #logger: Logger;
  readonly dropped = new Map<DropReason, number>();
  #lastLogged = new Map<DropReason, number>();

  constructor(table: RouteTable, logger: Logger) {
    this.#table = table;
    this.#kafka = table.routes.filter((r) => r.kind === 'kafka');
    this.#logger = logger;
  }

  /** The topic of a destination: its route's target, with the template filled in. */
  topicFor(destination: string): string {
    return targetFor(this.#table.route(destination), destination);
  }

  /** Literal topics of the kafka routes: created at start and always consumed. */
  get literalTopics(): string[] {
    return [...new Set(this.#kafka.filter((r) => !isTemplate(r)).map((r) => r.target ?? ''))].filter((t) => t !== '');
  }

  /** Template routes' topic regexes, except direct addressing (`/kafka/**`, which would match every topic). */
  get templateTopics(): RegExp[] {
    return this.#kafka
      .filter((r) => isTemplate(r) && !r.pattern.startsWith(DIRECT_KAFKA))
      .map((r) => targetRegex(r))
      .filter((r): r is RegExp => r !== undefined);
  }

  /** True when the topic carries Stompede's private format (read from where the group left it, never from the start). */
  isPrivate(topic: string): boolean {
    const route = this.routeOf(topic);
    return route !== undefined && routeFormat(route) === 'stompede';
  }

  encode(input: PublishInput): EncodedRecord {
    const route = this.#table.route(input.destination);
    return routeFormat(route) === 'stompede' ? encodeRecord(input) : encodeNativeRecord(input);
  }

  routeOf(topic: string): CompiledRoute | undefined {
    let route = this.#byTopic.get(topic);
    if (route === undefined) {
      // Direct addressing (`/kafka/**`, first in the table) maps every topic: it is the last resort here.
      const templates = this.#kafka.filter((r) => isTemplate(r) && !r.pattern.startsWith(DIRECT_KAFKA));
      route =
        this.#kafka.find((r) => !isTemplate(r) && r.target === topic) ??
        templates.find((r) => destinationFor(r, topic) !== undefined) ??
        templates.find((r) => targetRegex(r)?.test(topic) === true) ??
        this.#kafka.find((r) => r.pattern.startsWith(DIRECT_KAFKA)) ??
        null;
      if (this.#byTopic.size > 10_000) this.#byTopic.clear();
      this.#byTopic.set(topic, route);
    }
    return route ?? undefined;
  }

  /** The message a record stands for, or undefined when it has no destination here (counted and logged). */
  decode(topic: string, partition: number, record: KafkaMessage): HistoryRecord | undefined {
    const route = this.routeOf(topic);
    if (route === undefined) return this.#drop('no-destination', topic, record);
    const byKey = route.options?.destination === 'key';
    const mapped = byKey ? undefined : this.#mapped(route, topic);
    if (routeFormat(route) === 'stompede') {
      const envelope = decodeRecord(topic, partition, record);
      if (envelope === undefined) return this.#drop('no-destination', topic, record);
      if (mapped !== undefined && envelope.destination !== mapped) return this.#drop('foreign-destination', topic, record);
      if (mapped === undefined && !this.#within(route, topic, envelope.destination))
        return this.#drop('foreign-destination', topic, record);
      return envelope;
    }
    let destination = mapped;
    if (destination === undefined) {
      const named = recordDestination(record, byKey);
      if (named === undefined) return this.#drop('no-destination', topic, record);
      if (!this.#within(route, topic, named)) return this.#drop('foreign-destination', topic, record);
      destination = named;
    }
    return decodeNativeRecord(topic, partition, record, { destination, vhost: '/' }, (reason) => this.#count(reason, topic, record));
  }

  /** `destinationFor(route, topic)`, computed once per topic (its route never changes: see routeOf). */
  #mapped(route: CompiledRoute, topic: string): string | undefined {
    let mapped = this.#mappedByTopic.get(topic);
    if (mapped === undefined) {
      mapped = destinationFor(route, topic) ?? null;
      if (this.#mappedByTopic.size > 10_000) this.#mappedByTopic.clear();
      this.#mappedByTopic.set(topic, mapped);
    }
    return mapped ?? undefined;
  }

  /** A destination this route sends to this topic (so a record naming it stays within its route). */
  #within(route: CompiledRoute, topic: string, destination: string): boolean {
    return this.#table.route(destination) === route && targetFor(route, destination) === topic;
  }

  #drop(reason: DropReason, topic: string, record: KafkaMessage): undefined {
    this.#count(reason, topic, record);
    return undefined;
  }

  #count(reason: DropReason, topic: string, record: KafkaMessage): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    const now = Date.now();
    const last = this.#lastLogged.get(reason);
    if (last !== undefined && now - last < LOG_EVERY_MS) return;
    this.#lastLogged.set(reason, now);
    this.#logger.warn(
      { reason, topic, offset: record.offset, total: this.dropped.get(reason) },
      `a Kafka record (or part of one) was not delivered: ${EXPLAIN[reason]} (logged once a minute per reason)`,
    );
  }
}

const EXPLAIN: Readonly<Record<DropReason, string>> = {
  'no-destination': 'no route maps its topic to one destination, and it names none this route sends there',
  'foreign-destination': 'its key or stompede-destination header names a destination its route does not send to this topic',
  'header-not-utf8': 'a record header value is not UTF-8 text (that header is left out)',
  'key-not-utf8': 'its key is not UTF-8 text (kafka-key is left out)',
  'bad-record': 'it could not be read',
};
