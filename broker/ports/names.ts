/**
 * The one rule for names that end up in other systems: the node id and the cluster name become Kafka group and
 * client ids, Redis key prefixes and MongoDB collection names. The config, the Broker and the Kafka bus all check
 * it (the bus cannot import the config: it lives here, among the ports, for that reason).
 */
export const NAME_RULE = Object.freeze({
  pattern: /^[A-Za-z0-9._-]{1,64}$/,
  maxLength: 64,
  /** Ends a sentence such as `nodeId "a b" may use only …`. */
  text: 'letters, digits, ".", "_" and "-", at most 64',
});

export function validName(name: string): boolean {
  return NAME_RULE.pattern.test(name);
}
