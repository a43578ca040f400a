// A small, real file system for disk-full tests: a tmpfs of a given size, mounted on a fresh
// directory under os.tmpdir() and unmounted afterwards. Mounting needs root (true on this project's
// CI and development machines). Where it cannot be mounted the test is skipped with the reason,
// except in CI (process.env.CI set), where a skipped disk-full test would hide a missing check, so
// there it fails.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  /** The mount point: an empty directory on a file system of the requested size. */
  dir: string;
  /** Unmounts and removes the mount point (also after a failed test: call it in a finally). */
  unmount(): void;
}

/** Mounts a tmpfs of `bytes` (a multiple of 4 KiB); returns it, or the reason it cannot (outside CI). */
export function mountTmpfs(bytes: number): Tmpfs | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const reason = `cannot mount a tmpfs (needs root): ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
    if (process.env.CI) throw new Error(`${reason}; in CI the disk-full test must run`);
    return { skip: reason };
  }
  return {
    dir,
    unmount() {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
