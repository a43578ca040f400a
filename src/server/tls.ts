// TLS material for HTTPS and wss:// (--ssl-certfile, --ssl-keyfile, --ssl-keyfile-password,
// --ssl-ca-certs): read once at startup and checked piece by piece, so that a bad file stops the
// server with one line that names the flag, the file and what is wrong with it, instead of an
// OpenSSL error code and a stack trace on the first connection.
//
// The checks, in order: each file can be read; the certificate file holds a certificate; the key
// file holds a private key that the password (if any) decrypts; the key belongs to the (first,
// i.e. leaf) certificate; the CA file holds certificates. Last, node:tls builds the secure
// context from all of it, exactly as the server will, so that nothing these checks missed can
// fail later.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { SERVER_LIMITS } from './limits.js';
import type { ServerOptions } from './options.js';

/** What node:https's createServer needs for TLS. */
export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  passphrase?: string;
  ca?: Buffer;
}

/** A TLS file that cannot be used; the message is the whole error line. */
export class TlsSetupError extends Error {}

/** Largest TLS file read: a public CA bundle is a few hundred KiB, a key or chain a few KiB. */
const MAX_TLS_FILE_BYTES = SERVER_LIMITS.tlsFileBytes.value;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const PEM_CERTIFICATES = new RegExp(PEM_CERTIFICATE.source, 'g');

/** Reads and checks the TLS files the options name; null when TLS is off (no --ssl-certfile). */
export function loadTls(options: ServerOptions): TlsMaterial | null {
  if (options.sslCertfile === null) return null;
  const certFlag = `--ssl-certfile "${options.sslCertfile}"`;
  // uvicorn's rule: without --ssl-keyfile, the key is in the certificate file.
  const keyFlag = options.sslKeyfile === null ? certFlag : `--ssl-keyfile "${options.sslKeyfile}"`;
  const cert = read(certFlag, options.sslCertfile);
  const key = options.sslKeyfile === null ? cert : read(keyFlag, options.sslKeyfile);
  const passphrase = options.sslKeyfilePassword ?? undefined;
  const ca = options.sslCaCerts === null ? undefined : read(`--ssl-ca-certs "${options.sslCaCerts}"`, options.sslCaCerts);

  const leaf = certificate(certFlag, cert);
  const privateKey = decodeKey(keyFlag, key, passphrase);
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsSetupError(`the private key in ${keyFlag} does not belong to the certificate in ${certFlag}`);
  }
  if (ca !== undefined) {
    const caFlag = `--ssl-ca-certs "${options.sslCaCerts}"`;
    const blocks = ca.toString('latin1').match(PEM_CERTIFICATES) ?? [];
    // node:tls would take a file without certificates silently, and trust nothing from it.
    if (blocks.length === 0) throw new TlsSetupError(`${caFlag} holds no PEM certificate`);
    for (const block of blocks) certificate(caFlag, Buffer.from(block, 'latin1'));
  }

  const material: TlsMaterial = { key, cert, ...(passphrase !== undefined && { passphrase }), ...(ca !== undefined && { ca }) };
  try {
    createSecureContext(material);
  } catch (error) {
    throw new TlsSetupError(`TLS cannot use ${certFlag}${keyFlag === certFlag ? '' : ` with ${keyFlag}`}: ${reason(error)}`);
  }
  return material;
}

/**
 * Reads a whole file of at most MAX_TLS_FILE_BYTES. Bounded by reading, not by its stated size:
 * a path such as /dev/zero states none and never ends.
 */
function read(flag: string, path: string): Buffer {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const buffer = Buffer.alloc(MAX_TLS_FILE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break; // end of file
      length += n;
    }
    if (length > MAX_TLS_FILE_BYTES) throw new TlsSetupError(`${flag} is larger than ${MAX_TLS_FILE_BYTES / 1024} KiB: not a PEM file`);
    return buffer.subarray(0, length);
  } catch (error) {
    if (error instanceof TlsSetupError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : reason(error);
    throw new TlsSetupError(`cannot read ${flag}: ${why}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The first certificate in a PEM file. */
function certificate(flag: string, pem: Buffer): X509Certificate {
  if (!PEM_CERTIFICATE.test(pem.toString('latin1'))) throw new TlsSetupError(`${flag} holds no PEM certificate`);
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsSetupError(`${flag} holds a certificate that cannot be read: ${reason(error)}`);
  }
}

function decodeKey(flag: string, pem: Buffer, passphrase: string | undefined): KeyObject {
  try {
    return createPrivateKey(passphrase === undefined ? { key: pem } : { key: pem, passphrase });
  } catch (error) {
    const text = pem.toString('latin1');
    // PKCS#8 ("BEGIN ENCRYPTED PRIVATE KEY") and the traditional form ("Proc-Type: 4,ENCRYPTED").
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m.test(text);
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new TlsSetupError(`${flag} holds no PEM private key`);
    if (encrypted && passphrase === undefined) throw new TlsSetupError(`${flag} is encrypted: give its password with --ssl-keyfile-password`);
    // A wrong password usually fails the cipher's padding check (BAD_DECRYPT); about once in 256
    // the garbage happens to end in valid padding, and OpenSSL fails later, parsing it
    // ("unsupported"...). Either way the password did not give a key.
    if (encrypted && passphrase !== undefined) throw new TlsSetupError(`--ssl-keyfile-password does not decrypt ${flag}`);
    throw new TlsSetupError(`${flag} holds a private key that cannot be read: ${reason(error)}`);
  }
}

/** OpenSSL's own words without its error-code prefix ("error:05800074:x509 ...::key values mismatch"). */
function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^error:[0-9A-F]+:[^:]*::/, '');
}
