/** Ed25519 signatures over canonical JSON, and key ids: what signs export manifests, anchors and retention checkpoints. */

import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, sha256Hex } from '../core/canonical-json';

// Knows nothing of the database or the server: the offline verifier imports it from the build output.

/** The key id of an Ed25519 public key: the first 16 hex digits of the SHA-256 of its SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  return sha256Hex(publicKey.export({ format: 'der', type: 'spki' })).slice(0, 16);
}

/** Public half and key id of a private key in PEM. */
export function publicKeyOf(privateKeyPem: string): { pem: string; keyId: string } {
  const pub = createPublicKey(createPrivateKey(privateKeyPem));
  return { pem: pub.export({ format: 'pem', type: 'spki' }).toString(), keyId: keyIdOf(pub) };
}

/** Signs `payload`'s canonical JSON with Ed25519; base64. */
export function signCanonical(privateKeyPem: string, payload: unknown): string {
  return sign(null, Buffer.from(canonicalJson(payload)), createPrivateKey(privateKeyPem)).toString('base64');
}

export function verifyCanonical(publicKeyPem: string, payload: unknown, signature: string): boolean {
  try {
    return verify(null, Buffer.from(canonicalJson(payload)), createPublicKey(publicKeyPem), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
