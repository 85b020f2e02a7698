import { AssignerProtocol, type GroupMember, type GroupMemberAssignment, type PartitionAssigner } from 'kafkajs';

/** The name every node offers first; a group whose members all offer it uses it (Kafka picks a common protocol). */
export const SUBSCRIBED_ASSIGNER = 'StompedeSubscribed';

/**
 * Spreads each topic's partitions over the members that subscribe to it, round-robin over all partitions of all
 * topics (Kafka's own RoundRobinAssignor does the same). kafkajs's round-robin assigner hands out only the topics
 * the leader subscribes to, and to every member alike: when nodes consume different topics (a topic one node
 * added for a destination a client named there), the topic is never consumed if the leader lacks it, and the
 * partitions given to a member that lacks it wait, unread, until the next rebalance.
 */
export const subscribedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: SUBSCRIBED_ASSIGNER,
  version: 0,

  async assign({ members }): Promise<GroupMemberAssignment[]> {
    const subscribers = subscribersByTopic(members);
    // The leader knows the partitions of its own topics only: ask for the others' too.
    await cluster.addMultipleTargetTopics([...subscribers.keys()]);
    const partitions = new Map<string, number[]>();
    for (const topic of subscribers.keys())
      partitions.set(
        topic,
        cluster
          .findTopicPartitionMetadata(topic)
          .map((p) => p.partitionId)
          .sort((a, b) => a - b),
      );
    const plan = planAssignment(subscribers, partitions);
    return members.map(({ memberId }) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: plan.get(memberId) ?? {},
        userData: Buffer.alloc(0),
      }),
    }));
  },

  protocol({ topics }) {
    return {
      name: SUBSCRIBED_ASSIGNER,
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    };
  },
});

/** Topic → the ids of the members subscribing to it, from each member's join metadata; both sorted. */
export function subscribersByTopic(members: readonly GroupMember[]): Map<string, string[]> {
  const byTopic = new Map<string, string[]>();
  for (const { memberId, memberMetadata } of [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : 1))) {
    for (const topic of AssignerProtocol.MemberMetadata.decode(memberMetadata)?.topics ?? []) {
      let list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, (list = []));
      if (!list.includes(memberId)) list.push(memberId);
    }
  }
  return new Map([...byTopic].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Member → topic → partitions. Walks the partitions of every topic in order with one cursor over all members,
 * skipping members that do not subscribe to the topic, so load spreads across topics and every partition has an
 * owner that reads it.
 */
export function planAssignment(
  subscribers: ReadonlyMap<string, readonly string[]>,
  partitions: ReadonlyMap<string, readonly number[]>,
): Map<string, Record<string, number[]>> {
  const everyone = [...new Set([...subscribers.values()].flat())].sort();
  const plan = new Map<string, Record<string, number[]>>();
  let cursor = 0;
  for (const [topic, members] of subscribers) {
    if (members.length === 0) continue;
    for (const partition of partitions.get(topic) ?? []) {
      // The next member, in the common order, that subscribes to this topic (one always does).
      let owner = everyone[cursor % everyone.length] as string;
      while (!members.includes(owner)) owner = everyone[++cursor % everyone.length] as string;
      cursor++;
      let topics = plan.get(owner);
      if (topics === undefined) plan.set(owner, (topics = {}));
      (topics[topic] ??= []).push(partition);
    }
  }
  return plan;
}
