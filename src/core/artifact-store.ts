import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Raised when an upload goes past the size limit; nothing is kept. */
export class ArtifactTooLargeError extends Error {}

export interface StoredBlob {
  sha256: string;
  sizeBytes: number;
  /** Where the bytes are, under the store's root; chosen by the store, never by a client. */
  path: string;
}

/**
 * Content-addressed files under one root chosen by the server: `<root>/sha256/ab/cd/<hash>`.
 * Bytes are written to a temporary file while hashed, then renamed into place; the same content
 * is stored once.
 */
export class ArtifactStore {
  constructor(
    readonly root: string,
    readonly maxBytes: number,
  ) {}

  pathFor(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error('not a sha256');
    return path.join(this.root, 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  /** Streams `source` into a temporary file, hashing and counting; refuses past `maxBytes`. */
  async receive(source: Readable, maxBytes = this.maxBytes): Promise<{ tempPath: string; sha256: string; sizeBytes: number }> {
    const tmpDir = path.join(this.root, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    const tempPath = path.join(tmpDir, randomUUID());
    const hash = createHash('sha256');
    let size = 0;
    const max = maxBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > max) return done(new ArtifactTooLargeError(`artifact exceeds ${max} bytes`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const out = createWriteStream(tempPath, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(source, meter, out);
    } catch (e) {
      // The file may still be opening when the upload fails: remove it only once the stream has closed.
      if (!out.closed) await once(out, 'close').catch(() => undefined);
      await rm(tempPath, { force: true });
      throw e;
    }
    return { tempPath, sha256: hash.digest('hex'), sizeBytes: size };
  }

  /** Moves a received file to its content address (or drops it when that content is already stored). */
  async commit(tempPath: string, sha256: string): Promise<string> {
    const target = this.pathFor(sha256);
    await mkdir(path.dirname(target), { recursive: true });
    try {
      await stat(target);
      await rm(tempPath, { force: true });
    } catch {
      await rename(tempPath, target);
    }
    return target;
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }

  /** Stores bytes produced by the server itself (demo models, trainers). */
  async put(bytes: Uint8Array): Promise<StoredBlob> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const target = this.pathFor(sha256);
    await mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(this.root, 'tmp');
    await mkdir(tmp, { recursive: true });
    const tempPath = path.join(tmp, randomUUID());
    await writeFile(tempPath, bytes, { mode: 0o600 });
    await this.commit(tempPath, sha256);
    return { sha256, sizeBytes: bytes.byteLength, path: target };
  }

  async read(sha256: string): Promise<Buffer> {
    return readFile(this.pathFor(sha256));
  }
}

/** An upload refused before it was stored; `status` is the HTTP status to answer with. */
export class ArtifactRejectedError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}
