// Who is online on the other server trees, when several share one chat through Redis: the
// `online` lists of the rooms and the `presence` pushes must count a user connected to any tree.
// Presence is not history: nothing of it needs to survive a restart, so it travels on a stream of
// its own (chat:presence, capped), not in the shared log.
//
// Theory of operation:
//
//   Each tree says what changes, and repeats what it knows when asked. Entries (one per turn at
//     most, plus the beats), each naming the tree that wrote it:
//       hello   a tree started (or came back after losing Redis): every other tree answers with
//               a snap, and forgets what that tree said before (its connections are new)
//       snap    all the users connected to the writer now (replaces what it said before)
//       on/off  users whose first connection opened / last one closed on the writer
//       beat    the writer is alive (every BEAT_MS)
//       bye     the writer is stopping: its users are offline (there)
//   A tree not heard from for GONE_AFTER_MS (three beats: it crashed, or lost Redis) is forgotten
//   with its users. So a crashed tree's users show offline within seconds, and a tree that lost
//   Redis for a while and comes back says hello and snap, and is listed again.
//
//   A user is online elsewhere while at least one other tree lists them; `presenceChanged` is
//   called when that turns true or false, and the room service (rooms/service.ts) then checks
//   the user's rooms, as for its own connections.
import type { PresenceEntry, SharedLog } from './redis/shared-log.js';

/** A tree says it is alive this often (ms). */
export const BEAT_MS = 5000;
/** A tree not heard from for this long is gone (ms): three beats, so one late beat is no gap. */
export const GONE_AFTER_MS = 3 * BEAT_MS;

export interface PresenceHooks {
  /** The users connected to this tree now. */
  localUsers(): Iterable<string>;
  /** `user` came online, or went offline, on the other trees (taken together). */
  presenceChanged(user: string): void;
}

export class SharedPresence {
  private readonly log: SharedLog;
  private hooks: PresenceHooks | null = null;
  /** Per other tree: the users it lists, and when it was last heard from. */
  private readonly trees = new Map<string, { users: Set<string>; heardAt: number }>();
  /** user → how many other trees list them. A user listed by none has no entry. */
  private readonly listedBy = new Map<string, number>();
  /** This turn's local changes, written as one entry each way at the end of the turn. */
  private turnOn = new Set<string>();
  private turnOff = new Set<string>();
  private flushQueued = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(log: SharedLog) {
    this.log = log;
  }

  /** Starts: says hello and what this tree has, then beats. */
  start(hooks: PresenceHooks): void {
    this.hooks = hooks;
    this.announce();
    this.timer = setInterval(() => this.beat(), BEAT_MS);
    this.timer.unref();
  }

  /** Whether another tree lists `user`. */
  isOnline(user: string): boolean {
    return this.listedBy.has(user);
  }

  /** Trees heard from, besides this one (metrics, tests). */
  get otherTrees(): number {
    return this.trees.size;
  }

  /** A local change (the first connection opened or the last closed), written at the end of the turn. */
  localChanged(user: string, online: boolean): void {
    // A user who came and went within the turn cancels out.
    if (online) {
      if (!this.turnOff.delete(user)) this.turnOn.add(user);
    } else if (!this.turnOn.delete(user)) {
      this.turnOff.add(user);
    }
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      if (this.turnOn.size > 0) this.log.appendPresence('on', [...this.turnOn]);
      if (this.turnOff.size > 0) this.log.appendPresence('off', [...this.turnOff]);
      this.turnOn = new Set();
      this.turnOff = new Set();
    });
  }

  /**
   * Redis is back after a loss: say hello again (the others answer with a snap), say what this
   * tree has, and give every other tree a fresh three beats: they could not be heard meanwhile.
   */
  reconnected(): void {
    const now = Date.now();
    for (const tree of this.trees.values()) tree.heardAt = now;
    this.announce();
  }

  /** Entries of the presence stream, in order. */
  receive(entries: readonly PresenceEntry[]): void {
    const now = Date.now();
    for (const entry of entries) {
      if (entry.tree === this.log.tree) continue;
      let tree = this.trees.get(entry.tree);
      if (!tree) this.trees.set(entry.tree, (tree = { users: new Set(), heardAt: now }));
      tree.heardAt = now;
      switch (entry.kind) {
        case 'hello':
          this.replace(tree.users, []);
          // Answered at the end of the turn (one snap for many hellos is enough, but they are rare).
          setImmediate(() => {
            if (this.hooks) void this.log.appendPresence('snap', [...this.hooks.localUsers()]);
          });
          break;
        case 'snap':
          this.replace(tree.users, entry.users);
          break;
        case 'on':
          for (const user of entry.users) if (!tree.users.has(user)) { tree.users.add(user); this.count(user, 1); }
          break;
        case 'off':
          for (const user of entry.users) if (tree.users.delete(user)) this.count(user, -1);
          break;
        case 'bye':
          this.replace(tree.users, []);
          this.trees.delete(entry.tree);
          break;
        default: // 'beat', or a kind from a newer version: the tree is alive, nothing else
      }
    }
  }

  /** Stops beating and says bye (best effort: a crash says nothing, and the beats stop instead). */
  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.log.appendPresence('bye', []);
  }

  private announce(): void {
    this.log.appendPresence('hello', []);
    this.log.appendPresence('snap', [...this.hooks!.localUsers()]);
  }

  private beat(): void {
    this.log.appendPresence('beat', []);
    const now = Date.now();
    for (const [name, tree] of this.trees) {
      if (now - tree.heardAt < GONE_AFTER_MS) continue;
      this.replace(tree.users, []);
      this.trees.delete(name);
    }
  }

  /** Replaces a tree's list, counting who appears and who disappears. */
  private replace(users: Set<string>, next: readonly string[]): void {
    const nextSet = new Set(next);
    for (const user of users) if (!nextSet.has(user)) this.count(user, -1);
    for (const user of nextSet) if (!users.has(user)) this.count(user, 1);
    users.clear();
    for (const user of nextSet) users.add(user);
  }

  private count(user: string, delta: 1 | -1): void {
    const before = this.listedBy.get(user) ?? 0;
    const after = before + delta;
    if (after > 0) this.listedBy.set(user, after);
    else this.listedBy.delete(user);
    if ((before > 0) !== (after > 0)) this.hooks?.presenceChanged(user);
  }
}
