import type { Readable } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { audit } from '../audit/audit.service';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput, forbidden, unauthenticated } from '../core/errors';
import { Artifact } from './artifact.entity';
import { ArtifactTooLargeError } from './artifact-store';
import { OnnxParseError, readOnnxSignature, type OnnxSignature } from './onnx';

export interface UploadedArtifact {
  sha256: string;
  sizeBytes: number;
  format: 'ONNX';
  signature: OnnxSignature;
  /** false when identical bytes were already stored */
  created: boolean;
}

export class ArtifactRejectedError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * Receives an artifact upload: streamed to a temporary file under the server's root while the
 * server computes its sha256 and enforces the size limit, parsed as ONNX (anything else is
 * refused), then moved to its content address and recorded with one audit event.
 */
export async function uploadArtifact(ctx: RequestContext, body: Readable): Promise<UploadedArtifact> {
  if (!ctx.principal) throw ctx.authError ?? unauthenticated();
  if (!ctx.ability.can('create', 'Artifact')) throw forbidden('Not allowed to upload artifacts');
  const store = ctx.app.artifacts;
  let received: Awaited<ReturnType<typeof store.receive>>;
  try {
    received = await store.receive(body);
  } catch (e) {
    if (e instanceof ArtifactTooLargeError) throw new ArtifactRejectedError(e.message, 413);
    throw e;
  }
  try {
    if (received.sizeBytes === 0) throw badInput('The upload is empty', { reason: 'ARTIFACT_EMPTY' });
    let signature: OnnxSignature;
    try {
      signature = readOnnxSignature(await readFile(received.tempPath));
    } catch (e) {
      if (e instanceof OnnxParseError) throw badInput(`Not a valid ONNX model: ${e.message}`, { reason: 'ARTIFACT_NOT_ONNX' });
      throw e;
    }
    return await inTransaction(ctx, async (em) => {
      const existing = await em.findOne(Artifact, { where: { sha256: received.sha256 } });
      await store.commit(received.tempPath, received.sha256);
      if (!existing) {
        await em.insert(Artifact, { sha256: received.sha256, sizeBytes: received.sizeBytes, format: 'ONNX', signature, createdBy: ctx.principal!.id });
      }
      await audit(ctx, {
        action: 'uploadArtifact',
        subjectType: 'Artifact',
        subjectId: received.sha256,
        reason: existing ? 'identical content already stored' : null,
        after: { sha256: received.sha256, sizeBytes: received.sizeBytes, format: 'ONNX', signature },
      });
      return { sha256: received.sha256, sizeBytes: received.sizeBytes, format: 'ONNX' as const, signature, created: !existing };
    });
  } finally {
    await store.discard(received.tempPath);
  }
}
