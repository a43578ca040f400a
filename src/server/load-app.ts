// `--app PATH` (../shared/contract.md, "Loading an application"): import the ES or CommonJS
// module at PATH, relative to the current directory, and take its default export or else its
// export named `app`.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Application } from './asgi-types.js';

export class AppLoadError extends Error {}

export async function loadApplication(path: string): Promise<Application> {
  const absolute = resolve(process.cwd(), path);
  let module: Record<string, unknown>;
  try {
    // import() from the file's URL, so the module's own relative imports resolve next to it.
    module = await import(pathToFileURL(absolute).href) as Record<string, unknown>;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AppLoadError(`cannot import --app ${path}: ${reason}`);
  }
  // A CommonJS module arrives as { default: module.exports }, so look inside `default` too.
  const fallback = module.default as Record<string, unknown> | undefined;
  const candidate = typeof module.default === 'function' ? module.default
    : typeof module.app === 'function' ? module.app
      : typeof fallback?.app === 'function' ? fallback.app
        : null;
  if (candidate === null) {
    throw new AppLoadError(`--app ${path} exports no application: expected a default export or an export named "app" that is a function`);
  }
  return candidate as Application;
}
