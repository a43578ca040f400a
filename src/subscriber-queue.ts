// One subscriber's queue of chat messages waiting to be sent: bounded in messages and bytes.
//
// Replaces the Python design's `manager.Queue()` per subscriber, which was unbounded and which the
// consumer polled with `asyncio.to_thread(queue.get, timeout=3)`. Here nothing polls and nothing
// waits: a push into an idle queue calls `onReady`, which starts the consumer; the consumer takes
// everything queued at once and runs until the queue is empty again, then stops. So an idle
// subscriber costs no pending promise or suspended coroutine, only this object. A subscriber that
// falls too far behind overflows: its queue is dropped and the owner closes the connection
// ("slow consumer"), so one slow reader can neither grow memory without bound nor hold up anyone.

export class SubscriberQueue {
  private items: string[] = [];
  /**
   * The array takeAll() handed out the time before, emptied and reused for the next pushes: the
   * consumer is done with it by its next takeAll(), so two arrays serve the queue's whole life
   * and a delivery allocates none.
   */
  private spare: string[] = [];
  private bytes = 0;
  private closed = false;
  /** No consumer is running: the next push must start one (through onReady). */
  private idle = true;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  /** Called when a push finds the queue idle: start the consumer. */
  onReady: (() => void) | null = null;
  /** Called once, when a push would go over a bound. The queue is closed by then. */
  onOverflow: (() => void) | null = null;

  constructor(maxMessages: number, maxBytes: number) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  /**
   * Adds a batch (`sizes`: their UTF-8 lengths, computed once per broadcast by the caller), then
   * starts the consumer once: it takes the whole batch in one go.
   */
  pushAll(texts: string[], sizes: number[]): void {
    for (let i = 0; i < texts.length; i++) if (!this.add(texts[i]!, sizes[i]!)) return;
    this.ready();
  }

  /** Adds one message (`size`: its UTF-8 length, computed once by the caller for all queues). */
  push(text: string, size: number): void {
    if (this.add(text, size)) this.ready();
  }

  /**
   * Puts the history in a new queue, outside the bounds: the history has bounds of its own
   * (CHAT_HISTORY_SIZE messages, each within the message limits), and a newcomer must never be
   * refused because the room's recent messages happen to be large.
   */
  seed(texts: string[]): void {
    for (const text of texts) this.items.push(text);
    this.ready();
  }

  /** Queues one message; false once the queue is closed (or has just overflowed). */
  private add(text: string, size: number): boolean {
    if (this.closed) return false;
    if (this.items.length + 1 > this.maxMessages || this.bytes + size > this.maxBytes) {
      this.close();
      this.onOverflow?.();
      return false;
    }
    this.items.push(text);
    this.bytes += size;
    return true;
  }

  private ready(): void {
    if (!this.idle) return;
    this.idle = false;
    this.onReady?.();
  }

  /**
   * Everything queued, at once (the consumer writes it as one batch), or null when there is
   * nothing (the queue is then idle: the next push calls onReady) or the queue is closed. The
   * array is the queue's own and valid until the next takeAll(), which reuses it: read it, do
   * not keep it.
   */
  takeAll(): string[] | null {
    if (this.items.length === 0) {
      this.idle = true;
      return null;
    }
    const items = this.items;
    this.spare.length = 0;
    this.items = this.spare;
    this.spare = items;
    this.bytes = 0;
    return items;
  }

  close(): void {
    this.closed = true;
    this.items = [];
    this.spare = [];
    this.bytes = 0;
  }

  get length(): number {
    return this.items.length;
  }
}
