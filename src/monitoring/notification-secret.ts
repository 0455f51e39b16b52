// Channel secrets at rest: AES-256-GCM under NOTIFY_SECRET_KEY, bound to the channel's id (as
// additional data) so that a ciphertext copied onto another channel's row does not decrypt there.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** Encrypts a channel's secret for its row: `iv.tag.ciphertext`, each base64url. */
export function sealChannelSecret(key: Buffer, channelId: string, secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(channelId));
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return [iv, cipher.getAuthTag(), ciphertext].map((b) => b.toString('base64url')).join('.');
}

/** The secret sealed by {@link sealChannelSecret} for this channel; throws when the key or the row differs. */
export function openChannelSecret(key: Buffer, channelId: string, sealed: string): string {
  const [iv, tag, ciphertext] = sealed.split('.').map((p) => Buffer.from(p, 'base64url'));
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(channelId));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
}

/** A new webhook signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
