// parseOptions (src/server/options.ts), in process: the defaults, every flag, and every usage error
// with its exact one-line message (main.ts prints it with the usage and exits 2; cli.test.ts checks
// that part through the real command).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { USAGE, UsageError, parseOptions, type ServerOptions } from '../src/server/options.js';

const DEFAULTS: ServerOptions = {
  host: '127.0.0.1',
  port: 8080,
  app: null,
  workers: 1,
  workerAccept: 'kernel',
  rootPath: '',
  logLevel: 'info',
  lifespan: 'auto',
  wsMaxSize: 1048576,
  wsPingInterval: 20,
  wsPingTimeout: 20,
  wsPerMessageDeflate: false,
  timeoutGracefulShutdown: 10,
  timeoutKeepAlive: 5,
  timeoutRequestHead: 20,
  limitConcurrency: 10000,
  sslKeyfile: null,
  sslCertfile: null,
  sslKeyfilePassword: null,
  sslCaCerts: null,
  proxyHeaders: false,
  forwardedAllowIps: ['127.0.0.1'],
  help: false,
  version: false,
};

/** Asserts that parsing `argv` throws a UsageError with exactly `message`. */
function rejects(argv: string[], message: string): void {
  assert.throws(() => parseOptions(argv), (error: unknown) => {
    assert.ok(error instanceof UsageError, `a UsageError, got ${String(error)}`);
    assert.equal(error.message, message);
    return true;
  });
}

describe('defaults', () => {
  test('no arguments: every default', () => {
    assert.deepEqual(parseOptions([]), DEFAULTS);
  });

  test('the usage states each default that parseOptions applies', () => {
    for (const stated of ['default 127.0.0.1', 'default 8080', 'default 1)', 'default "")', 'default info', 'default auto', 'default 1048576', 'default 20)', 'default 10)', 'default 5)', 'default 10000', 'default off)', 'default 127.0.0.1)']) {
      assert.ok(USAGE.includes(stated), `the usage says "${stated}"`);
    }
  });
});

describe('every flag', () => {
  test('each flag sets its field', () => {
    const argv = [
      '--host', '0.0.0.0', '--port', '9000', '--app', 'examples/echo.mjs', '--workers', '4', '--worker-accept', 'round-robin',
      '--root-path', '/chat', '--log-level', 'debug', '--lifespan', 'on', '--ws-max-size', '65536',
      '--ws-ping-interval', '2.5', '--ws-ping-timeout', '0', '--ws-per-message-deflate', '--timeout-graceful-shutdown', '30',
      '--timeout-keep-alive', '0.25', '--timeout-request-head', '1.5', '--limit-concurrency', '50', '--help', '--version',
      '--ssl-keyfile', 'k.pem', '--ssl-certfile', 'c.pem', '--ssl-keyfile-password', 'pw', '--ssl-ca-certs', 'ca.pem',
      '--proxy-headers', '--forwarded-allow-ips', '10.0.0.1, 10.1.0.0/16,::1',
    ];
    assert.deepEqual(parseOptions(argv), {
      host: '0.0.0.0',
      port: 9000,
      app: 'examples/echo.mjs',
      workers: 4,
      workerAccept: 'round-robin',
      rootPath: '/chat',
      logLevel: 'debug',
      lifespan: 'on',
      wsMaxSize: 65536,
      wsPingInterval: 2.5,
      wsPingTimeout: 0,
      wsPerMessageDeflate: true,
      timeoutGracefulShutdown: 30,
      timeoutKeepAlive: 0.25,
      timeoutRequestHead: 1.5,
      limitConcurrency: 50,
      sslKeyfile: 'k.pem',
      sslCertfile: 'c.pem',
      sslKeyfilePassword: 'pw',
      sslCaCerts: 'ca.pem',
      proxyHeaders: true,
      forwardedAllowIps: ['10.0.0.1', '10.1.0.0/16', '::1'],
      help: true,
      version: true,
    } satisfies ServerOptions);
  });

  test('--flag=value works as --flag value', () => {
    assert.deepEqual(parseOptions(['--port=9001', '--lifespan=off', '--root-path=/x']), { ...DEFAULTS, port: 9001, lifespan: 'off', rootPath: '/x' });
  });

  test('a flag given twice: the last one wins', () => {
    assert.equal(parseOptions(['--port', '1', '--port', '2']).port, 2);
  });

  test('every flag parseOptions knows is in the usage', () => {
    for (const flag of ['--host', '--port', '--app', '--workers', '--worker-accept', '--root-path', '--log-level', '--lifespan', '--ws-max-size', '--ws-ping-interval', '--ws-ping-timeout', '--ws-per-message-deflate', '--timeout-graceful-shutdown', '--timeout-keep-alive', '--timeout-request-head', '--limit-concurrency', '--ssl-certfile', '--ssl-keyfile', '--ssl-keyfile-password', '--ssl-ca-certs', '--proxy-headers', '--forwarded-allow-ips', '--help', '--version']) {
      assert.match(USAGE, new RegExp(`^  ${flag}\\b`, 'm'), `the usage has a line for ${flag}`);
    }
  });
});

describe('TLS flags', () => {
  test('--ssl-certfile alone: the key is read from the same file (as uvicorn does)', () => {
    assert.deepEqual(parseOptions(['--ssl-certfile', 'both.pem']), { ...DEFAULTS, sslCertfile: 'both.pem' });
  });

  test('the other TLS flags without --ssl-certfile are usage errors, not a plain-HTTP server', () => {
    rejects(['--ssl-keyfile', 'k.pem'], '--ssl-keyfile needs --ssl-certfile');
    rejects(['--ssl-keyfile-password', 'pw'], '--ssl-keyfile-password needs --ssl-certfile');
    rejects(['--ssl-ca-certs', 'ca.pem'], '--ssl-ca-certs needs --ssl-certfile');
  });

  test('an empty path or password is a usage error', () => {
    rejects(['--ssl-certfile='], '--ssl-certfile needs a value');
    rejects(['--ssl-certfile', 'c.pem', '--ssl-keyfile='], '--ssl-keyfile needs a value');
    rejects(['--ssl-certfile', 'c.pem', '--ssl-keyfile-password='], '--ssl-keyfile-password needs a value');
  });
});

describe('proxy flags', () => {
  test('--proxy-headers trusts 127.0.0.1 unless --forwarded-allow-ips says otherwise', () => {
    assert.deepEqual(parseOptions(['--proxy-headers']), { ...DEFAULTS, proxyHeaders: true });
    assert.deepEqual(parseOptions(['--proxy-headers', '--forwarded-allow-ips', '*']).forwardedAllowIps, ['*']);
    assert.deepEqual(parseOptions(['--proxy-headers', '--forwarded-allow-ips', ' 192.0.2.1 ,fd00::/8,,']).forwardedAllowIps, ['192.0.2.1', 'fd00::/8']);
  });

  test('--forwarded-allow-ips without --proxy-headers is a usage error (it would trust no one)', () => {
    rejects(['--forwarded-allow-ips', '*'], '--forwarded-allow-ips needs --proxy-headers');
  });

  test('an entry that is not an address, a network or "*" is a usage error naming it', () => {
    const not = (entry: string) => `--forwarded-allow-ips: "${entry}" is not an IP address, a network such as 10.0.0.0/8, or "*"`;
    rejects(['--proxy-headers', '--forwarded-allow-ips', '10.0.0.1,localhost'], not('localhost'));
    rejects(['--proxy-headers', '--forwarded-allow-ips', '10.0.0.0/33'], not('10.0.0.0/33'));
    rejects(['--proxy-headers', '--forwarded-allow-ips', '::/129'], not('::/129'));
    rejects(['--proxy-headers', '--forwarded-allow-ips', '10.0.0.0/'], not('10.0.0.0/'));
    rejects(['--proxy-headers', '--forwarded-allow-ips', '10.0.0/8'], not('10.0.0/8'));
    rejects(['--proxy-headers', '--forwarded-allow-ips', ' , '], '--forwarded-allow-ips: no address, network or "*" in " , "');
    rejects(['--proxy-headers', '--forwarded-allow-ips='], '--forwarded-allow-ips needs a value');
  });
});

describe('--ws-per-message-deflate', () => {
  test('a switch: on when given, and it takes no value', () => {
    assert.equal(parseOptions(['--ws-per-message-deflate']).wsPerMessageDeflate, true);
    assert.equal(parseOptions([]).wsPerMessageDeflate, false);
    rejects(['--ws-per-message-deflate=yes'], "Option '--ws-per-message-deflate' does not take an argument");
  });
});

describe('--lifespan', () => {
  for (const mode of ['auto', 'on', 'off'] as const) {
    test(mode, () => assert.equal(parseOptions(['--lifespan', mode]).lifespan, mode));
  }

  test('anything else is a usage error (the values are case-sensitive)', () => {
    rejects(['--lifespan', 'maybe'], '--lifespan must be one of auto, on, off, got "maybe"');
    rejects(['--lifespan', 'ON'], '--lifespan must be one of auto, on, off, got "ON"');
    rejects(['--worker-accept', 'rr'], '--worker-accept must be one of kernel, round-robin, got "rr"');
    rejects(['--lifespan='], '--lifespan needs a value');
  });
});

describe('--port', () => {
  test('0 (pick a free port) and 65535 are accepted', () => {
    assert.equal(parseOptions(['--port', '0']).port, 0);
    assert.equal(parseOptions(['--port', '65535']).port, 65535);
  });

  test('out of range, not a whole number, or empty', () => {
    rejects(['--port', '65536'], '--port must be a whole number from 0 to 65535, got "65536"');
    rejects(['--port', 'abc'], '--port must be a whole number from 0 to 65535, got "abc"');
    rejects(['--port', '80.5'], '--port must be a whole number from 0 to 65535, got "80.5"');
    rejects(['--port', ' 80'], '--port must be a whole number from 0 to 65535, got " 80"');
    rejects(['--port=-1'], '--port must be a whole number from 0 to 65535, got "-1"');
    rejects(['--port', '99999999999999999999'], '--port must be a whole number from 0 to 65535, got "99999999999999999999"');
    rejects(['--port='], '--port needs a value');
  });
});

describe('the other whole numbers', () => {
  test('--workers: 1 to 256', () => {
    assert.equal(parseOptions(['--workers', '256']).workers, 256);
    rejects(['--workers', '0'], '--workers must be a whole number from 1 to 256, got "0"');
    rejects(['--workers', '257'], '--workers must be a whole number from 1 to 256, got "257"');
  });

  test('--ws-max-size: 1 to 2^31 - 1 bytes', () => {
    assert.equal(parseOptions(['--ws-max-size', '2147483647']).wsMaxSize, 2147483647);
    rejects(['--ws-max-size', '0'], '--ws-max-size must be a whole number from 1 to 2147483647, got "0"');
    rejects(['--ws-max-size', '2147483648'], '--ws-max-size must be a whole number from 1 to 2147483647, got "2147483648"');
    rejects(['--ws-max-size', 'big'], '--ws-max-size must be a whole number from 1 to 2147483647, got "big"');
  });

  test('--limit-concurrency: 1 to 10,000,000', () => {
    assert.equal(parseOptions(['--limit-concurrency', '10000000']).limitConcurrency, 10_000_000);
    rejects(['--limit-concurrency', '0'], '--limit-concurrency must be a whole number from 1 to 10000000, got "0"');
    rejects(['--limit-concurrency', '10000001'], '--limit-concurrency must be a whole number from 1 to 10000000, got "10000001"');
  });
});

describe('seconds', () => {
  const flags = [
    ['--ws-ping-interval', 'wsPingInterval'],
    ['--ws-ping-timeout', 'wsPingTimeout'],
    ['--timeout-graceful-shutdown', 'timeoutGracefulShutdown'],
    ['--timeout-keep-alive', 'timeoutKeepAlive'],
  ] as const;
  for (const [flag, field] of flags) {
    test(`${flag}: whole or decimal seconds from 0 to 86400`, () => {
      assert.equal(parseOptions([flag, '0'])[field], 0);
      assert.equal(parseOptions([flag, '0.5'])[field], 0.5);
      assert.equal(parseOptions([flag, '86400'])[field], 86400);
      const bad = (value: string) => rejects([`${flag}=${value}`], `${flag} must be a number of seconds from 0 to 86400, got "${value}"`);
      bad('86400.5');
      bad('-1');
      bad('.5');
      bad('1e3');
      bad('5s');
      bad('abc');
    });
  }
});

describe('--timeout-request-head', () => {
  test('seconds from 0.1 (0 would mean no limit at all to node) to 300 (the whole request\'s limit)', () => {
    assert.equal(parseOptions(['--timeout-request-head', '0.5']).timeoutRequestHead, 0.5);
    assert.equal(parseOptions(['--timeout-request-head', '300']).timeoutRequestHead, 300);
    const bad = (value: string) => rejects([`--timeout-request-head=${value}`], `--timeout-request-head must be a number of seconds from 0.1 to 300, got "${value}"`);
    bad('0'); // node would read 0 as no limit at all
    bad('300.5');
    bad('-1');
    bad('1e3');
    bad('abc');
    rejects(['--timeout-request-head='], '--timeout-request-head needs a value');
  });
});

describe('--root-path', () => {
  test('empty (the default), or a path that starts with "/" and does not end with one', () => {
    assert.equal(parseOptions(['--root-path', '']).rootPath, '');
    assert.equal(parseOptions(['--root-path', '/api']).rootPath, '/api');
    assert.equal(parseOptions(['--root-path', '/api/v1']).rootPath, '/api/v1');
  });

  test('anything else is a usage error', () => {
    rejects(['--root-path', 'api'], '--root-path must start with "/" and not end with one, got "api"');
    rejects(['--root-path', '/api/'], '--root-path must start with "/" and not end with one, got "/api/"');
    rejects(['--root-path', '/'], '--root-path must start with "/" and not end with one, got "/"');
  });
});

describe('text flags and parseArgs errors', () => {
  test('--host, --app and --log-level need a non-empty value', () => {
    rejects(['--host='], '--host needs a value');
    rejects(['--app='], '--app needs a value');
    rejects(['--log-level='], '--log-level needs a value');
  });

  test('--log-level: one of the four levels', () => {
    for (const level of ['debug', 'info', 'warning', 'error'] as const) assert.equal(parseOptions(['--log-level', level]).logLevel, level);
    rejects(['--log-level', 'loud'], '--log-level must be one of debug, info, warning, error, got "loud"');
  });

  test('an unknown flag, a short flag, a positional argument, a value for a boolean', () => {
    rejects(['--bogus'], "Unknown option '--bogus'");
    rejects(['-p', '80'], "Unknown option '-p'");
    rejects(['serve'], "Unexpected argument 'serve'");
    rejects(['--help=yes'], "Option '--help' does not take an argument");
  });

  test('a flag without its value, at the end or followed by something that looks like a flag', () => {
    rejects(['--port'], '--port needs a value');
    rejects(['--app'], '--app needs a value');
    rejects(['--port', '-1'], '--port needs a value; to give one that starts with "-", write --port=VALUE');
    rejects(['--port', '--workers', '2'], '--port needs a value; to give one that starts with "-", write --port=VALUE');
  });

  test('every message is one line', () => {
    for (const argv of [['--bogus'], ['--port'], ['--port', '-1'], ['x'], ['--help=1'], ['--lifespan', 'x']]) {
      assert.throws(() => parseOptions(argv), (error: Error) => !error.message.includes('\n'));
    }
  });
});
