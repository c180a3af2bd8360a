// Rejected ideas grouped by what the agent said it tried, so forty learning-rate tweaks read as one line of the report.

export interface IdeaGroup<T> {
  /** The words that name what was changed, e.g. "learning rate". */
  topic: string;
  items: T[];
}

// Filler words, and verbs that say how a thing changed rather than what changed: "increase LR" and "lower LR" are one topic.
const FILLER = new Set(
  'a an the to from of in on for and or with by at as into instead than then it its is be per via vs so that this use using try trying'.split(' '),
);
const CHANGE = new Set(
  ('increase decrease raise lower reduce add remove drop set change switch grow shrink widen narrow enable disable double halve ' +
    'bump tweak replace make more less larger smaller higher bigger fewer turn swap tune adjust revert undo back again also only no not new ' +
    'longer shorter slightly much bit instead').split(' '),
);

/**
 * The topic of a description: its words lower-cased, without numbers, filler words or change verbs, a plural "s"
 * dropped, the first two left. "Lower the Adam learning rate from 0.03 to 0.01" and "increase Adam learning rate
 * to 0.05" are both "adam learning"; a description with nothing left is "other".
 */
export function topicOf(description: string): string {
  const words = description
    .toLowerCase()
    .split(/[^\p{L}\p{N}_]+/u)
    .filter((w) => w && !/^\p{N}/u.test(w) && !FILLER.has(w) && !CHANGE.has(w))
    .map((w) => (w.length > 3 && w.endsWith('s') && !w.endsWith('ss') ? w.slice(0, -1) : w));
  return words.slice(0, 2).join(' ') || 'other';
}

/** Groups in order of size (largest first), then of first appearance; items keep their order. */
export function groupIdeas<T extends { description: string }>(items: T[]): IdeaGroup<T>[] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const topic = topicOf(item.description);
    const group = groups.get(topic);
    if (group) group.push(item);
    else groups.set(topic, [item]);
  }
  return [...groups.entries()].map(([topic, grouped]) => ({ topic, items: grouped })).sort((a, b) => b.items.length - a.items.length);
}
