// One subscriber's queue of chat messages waiting to be sent: bounded in messages and bytes.
//
// Replaces the Python design's `manager.Queue()` per subscriber, which was unbounded and which the
// consumer polled with `asyncio.to_thread(queue.get, timeout=3)`. Here a push wakes the waiting
// consumer at once (an event, no polling), and a subscriber that falls too far behind overflows:
// its queue is dropped and the owner closes the connection ("slow consumer"), so one slow reader
// can neither grow memory without bound nor hold up anyone else.

export class SubscriberQueue {
  private items: string[] = [];
  private bytes = 0;
  private closed = false;
  private wake: ((items: string[] | null) => void) | null = null;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  /** Called once, when a push would go over a bound. The queue is closed by then. */
  onOverflow: (() => void) | null = null;

  constructor(maxMessages: number, maxBytes: number) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  /** Adds a message (`size`: its UTF-8 length, computed once per broadcast by the caller). */
  push(text: string, size: number): void {
    if (this.closed) return;
    if (this.wake) {
      // The consumer is waiting on an empty queue: hand the message over directly.
      const wake = this.wake;
      this.wake = null;
      wake([text]);
      return;
    }
    if (this.items.length + 1 > this.maxMessages || this.bytes + size > this.maxBytes) {
      this.close();
      this.onOverflow?.();
      return;
    }
    this.items.push(text);
    this.bytes += size;
  }

  /**
   * Everything queued, at once (the consumer writes it in one batch), waiting if there is
   * nothing yet; null once the queue is closed. One promise per batch, not per message.
   */
  take(): Promise<string[] | null> {
    if (this.items.length > 0) {
      const items = this.items;
      this.items = [];
      this.bytes = 0;
      return Promise.resolve(items);
    }
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => { this.wake = resolve; });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.items = [];
    this.bytes = 0;
    const wake = this.wake;
    this.wake = null;
    wake?.(null);
  }

  get length(): number {
    return this.items.length;
  }
}
