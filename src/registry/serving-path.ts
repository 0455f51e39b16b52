import type { EntityManager } from 'typeorm';

/**
 * Says why a model version is still on a serving path (routed, mirrored, awaited by a rollout in
 * flight, or a deployment's fallback), or null when it is not. The registry refuses to archive
 * such a version; the domain that routes traffic answers, and the assembly wires it.
 */
export type ServingPathCheck = (em: EntityManager, versionId: string) => Promise<string | null>;

declare module '../core/context' {
  interface AppServices {
    servingPath: ServingPathCheck;
  }
}
