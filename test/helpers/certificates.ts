// Certificates for the TLS tests, made with the openssl command into a fresh temporary directory
// per test run (nothing is committed, nothing outlives a day): a self-signed certificate for
// 127.0.0.1 with its key, the same key encrypted with a password, a second key that belongs to
// no certificate here, and a chain root → intermediate → leaf for --ssl-ca-certs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Certificates {
  dir: string;
  /** Self-signed, CN and subjectAltName IP 127.0.0.1; clients trust it as its own CA. */
  cert: string;
  key: string;
  /** `key`, encrypted (PKCS#8, AES-256) with `password`. */
  encryptedKey: string;
  password: string;
  /** A key of no certificate here. */
  otherKey: string;
  /** The root of the chain: what a client trusts. */
  root: string;
  /** The intermediate CA: what --ssl-ca-certs gives, so that the server can send the chain. */
  intermediate: string;
  /** A leaf for 127.0.0.1 signed by the intermediate, and its key. */
  leaf: string;
  leafKey: string;
  /** A file that is not PEM at all. */
  garbage: string;
  read(path: string): Buffer;
  remove(): void;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes every file of `Certificates` in a new temporary directory. */
export function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'asgi-tls-'));
  const at = (name: string) => join(dir, name);
  openssl(['req', '-x509', ...EC_KEY, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1', '-keyout', 'key.pem', '-out', 'cert.pem'], dir);
  const password = 'correct horse battery staple';
  openssl(['pkey', '-in', 'key.pem', '-aes256', '-passout', `pass:${password}`, '-out', 'encrypted-key.pem'], dir);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'other-key.pem'], dir);

  // The chain: root (self-signed CA) → intermediate (CA) → leaf (127.0.0.1).
  writeFileSync(at('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n');
  writeFileSync(at('leaf.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(['req', '-x509', ...EC_KEY, '-subj', '/CN=test root', '-days', '1', '-keyout', 'root-key.pem', '-out', 'root.pem'], dir);
  openssl(['req', ...EC_KEY, '-subj', '/CN=test intermediate', '-keyout', 'intermediate-key.pem', '-out', 'intermediate.csr'], dir);
  openssl(['x509', '-req', '-in', 'intermediate.csr', '-CA', 'root.pem', '-CAkey', 'root-key.pem', '-set_serial', '1', '-days', '1', '-extfile', 'ca.ext', '-out', 'intermediate.pem'], dir);
  openssl(['req', ...EC_KEY, '-subj', '/CN=127.0.0.1', '-keyout', 'leaf-key.pem', '-out', 'leaf.csr'], dir);
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'intermediate.pem', '-CAkey', 'intermediate-key.pem', '-set_serial', '2', '-days', '1', '-extfile', 'leaf.ext', '-out', 'leaf.pem'], dir);
  writeFileSync(at('garbage.pem'), 'this is not PEM\n');

  return {
    dir,
    cert: at('cert.pem'),
    key: at('key.pem'),
    encryptedKey: at('encrypted-key.pem'),
    password,
    otherKey: at('other-key.pem'),
    root: at('root.pem'),
    intermediate: at('intermediate.pem'),
    leaf: at('leaf.pem'),
    leafKey: at('leaf-key.pem'),
    garbage: at('garbage.pem'),
    read: (path) => readFileSync(path),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
