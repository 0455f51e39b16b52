import type { Readable } from 'node:stream';
import type { EntityManager } from 'typeorm';
import { audit, auditDenied } from '../core/audit/audit-chain';
import { inTransaction, type RequestContext } from '../core/context';
import { recordDenial } from '../core/audit/audit-chain';
import { badInput, forbidden, unauthenticated } from '../core/errors';
import { assertStorable } from '../core/validation';
import { Artifact } from './artifact.entity';
import { ModelVersion } from './model-version.entity';
import { ArtifactRejectedError, ArtifactTooLargeError } from '../core/artifact-store';
import { OnnxExternalDataError, OnnxParseError, type OnnxSignature } from './onnx';
import { parseOnnxFile } from './onnx-parse';
import { RegistryReason, registryError } from './registry.errors';

export interface UploadedArtifact {
  sha256: string;
  sizeBytes: number;
  format: 'ONNX';
  signature: OnnxSignature;
  /**
   * false when the caller already had these bytes: it stored them first, or may read a model
   * version made of them. Bytes only other teams hold answer like bytes never seen (true), so that
   * an upload cannot confirm a guess of a model the caller may not read; storage is shared either way.
   */
  created: boolean;
}

/**
 * Receives an artifact upload: streamed to a temporary file under the server's root while the
 * server computes its sha256 and enforces the size limit, parsed as ONNX (anything else is
 * refused), then moved to its content address and recorded with one audit event.
 */
export async function uploadArtifact(ctx: RequestContext, body: Readable): Promise<UploadedArtifact> {
  if (!ctx.principal) throw ctx.authError ?? unauthenticated();
  if (!ctx.ability.can('create', 'Artifact')) {
    const refused = forbidden('Not allowed to upload artifacts');
    throw await recordDenial(ctx, { action: 'uploadArtifact', subjectType: 'Artifact', reason: refused.message }, refused);
  }
  const store = ctx.app.artifacts;
  let received: Awaited<ReturnType<typeof store.receive>>;
  try {
    received = await store.receive(body);
  } catch (e) {
    if (e instanceof ArtifactTooLargeError) throw new ArtifactRejectedError(e.message, 413);
    throw e;
  }
  try {
    if (received.sizeBytes === 0) throw badInput('The upload is empty', { reason: RegistryReason.ARTIFACT_EMPTY });
    let signature: OnnxSignature;
    try {
      signature = await parseOnnxFile(received.tempPath, { heapMb: ctx.app.config.artifactParseHeapMb, timeoutMs: ctx.app.config.artifactParseTimeoutMs });
    } catch (e) {
      if (e instanceof OnnxExternalDataError) {
        // A model that names a file to read is an attempt on the server's files: recorded as refused.
        await auditDenied(ctx.app.db, ctx, { action: 'uploadArtifact', subjectType: 'Artifact', subjectId: received.sha256, reason: e.message });
        throw externalDataError(e);
      }
      if (e instanceof OnnxParseError) throw badInput(`Not a valid ONNX model: ${e.message}`, { reason: RegistryReason.ARTIFACT_NOT_ONNX });
      throw e;
    }
    // The signature's names are stored with the artifact and key every logged prediction.
    assertStorable(signature, 'signature');
    return await inTransaction(ctx, async (em, ctx) => {
      await store.commit(received.tempPath, received.sha256);
      // ON CONFLICT: two uploads of the same bytes at once both succeed; one of them creates the row.
      const inserted = await em
        .createQueryBuilder()
        .insert()
        .into(Artifact)
        .values({ sha256: received.sha256, sizeBytes: received.sizeBytes, format: 'ONNX', signature, createdBy: ctx.principal!.id })
        .orIgnore()
        .returning('sha256')
        .execute();
      const stored = inserted.raw.length > 0;
      const created = stored || !(await alreadyHeld(ctx, em, received.sha256));
      await audit(ctx, {
        action: 'uploadArtifact',
        subjectType: 'Artifact',
        subjectId: received.sha256,
        reason: stored ? null : 'identical content already stored',
        after: { sha256: received.sha256, sizeBytes: received.sizeBytes, format: 'ONNX', signature },
      });
      return { sha256: received.sha256, sizeBytes: received.sizeBytes, format: 'ONNX' as const, signature, created };
    });
  } finally {
    await store.discard(received.tempPath);
  }
}

/** Whether stored bytes were already the caller's: uploaded by it, or behind a model version it may read. */
async function alreadyHeld(ctx: RequestContext, em: EntityManager, sha256: string): Promise<boolean> {
  const artifact = await em.findOneByOrFail(Artifact, { sha256 });
  if (artifact.createdBy === ctx.principal!.id) return true;
  const versions = em.getRepository(ModelVersion).createQueryBuilder('x').where('x.artifactSha256 = :sha256', { sha256 });
  return ctx.loaders.scope(versions, 'ModelVersion', 'x').getExists();
}

function externalDataError(e: OnnxExternalDataError, details: Record<string, unknown> = {}) {
  return registryError(RegistryReason.EXTERNAL_DATA, `The model reads data from outside its own bytes: ${e.message}`, details);
}

/**
 * Reads a stored artifact again before a model version is made of it, so that bytes stored before
 * uploads were checked, or put into the store by other means, are held to the same rules: a model
 * that keeps tensor data outside its own bytes is refused with `MODEL_EXTERNAL_DATA` (and the
 * refusal audited as denied by the caller's policy gate), one that no longer parses with
 * `ARTIFACT_NOT_ONNX`.
 */
export async function checkStoredArtifact(ctx: RequestContext, sha256: string): Promise<void> {
  const limits = { heapMb: ctx.app.config.artifactParseHeapMb, timeoutMs: ctx.app.config.artifactParseTimeoutMs };
  try {
    await parseOnnxFile(ctx.app.artifacts.pathFor(sha256), limits);
  } catch (e) {
    if (e instanceof OnnxExternalDataError) {
      throw externalDataError(e, { field: 'artifactSha256', denied: true, subjectType: 'Artifact', subjectId: sha256 });
    }
    if (e instanceof OnnxParseError) {
      throw badInput(`The stored artifact is not a valid ONNX model: ${e.message}`, { reason: RegistryReason.ARTIFACT_NOT_ONNX, field: 'artifactSha256' });
    }
    throw e;
  }
}
