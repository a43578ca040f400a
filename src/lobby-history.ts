// The lobby's recent history: the last N messages as delivered, their ids, and the highest id
// trimmed away. The primary's broadcast loop keeps one (broadcast.ts), and so does each worker
// that mirrors it, applying the same batches in the same order: one structure, so the two cannot
// drift apart. It answers a new subscriber, with or without `since` (the lobby's resume).
export class LobbyHistory {
  /** Oldest first, at most `size`; `ids[i]` is the id of `texts[i]`. */
  texts: string[];
  ids: number[];
  /** The highest id dropped from the history: a resume from below it has a gap. */
  trimmedUpTo: number;
  private readonly size: number;

  constructor(size: number, trimmedUpTo: number, texts: string[] = [], ids: number[] = []) {
    this.size = size;
    this.trimmedUpTo = trimmedUpTo;
    this.texts = texts;
    this.ids = ids;
  }

  /** The newest id it knows of: its newest message's, or the trim point when it holds none. */
  get newestId(): number {
    return this.ids.length > 0 ? this.ids[this.ids.length - 1]! : this.trimmedUpTo;
  }

  add(id: number, text: string): void {
    this.texts.push(text);
    this.ids.push(id);
    if (this.texts.length > this.size) {
      this.texts.shift();
      this.trimmedUpTo = this.ids.shift()!;
    }
  }

  /** Starts over, empty, knowing nothing before `trimmedUpTo` (replay of a checkpoint). */
  reset(trimmedUpTo: number): void {
    this.texts = [];
    this.ids = [];
    this.trimmedUpTo = trimmedUpTo;
  }

  /**
   * A new subscriber's history. Without `since`: all of it. With it: the messages after `since`
   * if the history still holds all of them (recovered), else all of it (not recovered: the client
   * has a gap). An id above the newest one is a gap too: the client saw messages this server does
   * not have (its log was lost, or it ran memory-only).
   */
  after(since: number | undefined): { texts: string[]; recovered?: boolean } {
    if (since === undefined) return { texts: this.texts.slice() };
    if (since < this.trimmedUpTo || since > this.newestId) return { texts: this.texts.slice(), recovered: false };
    let first = this.ids.length;
    while (first > 0 && this.ids[first - 1]! > since) first--;
    return { texts: this.texts.slice(first), recovered: true };
  }
}
