import type { OidcConfig, OidcIssuerConfig } from '../config';
import { AppError, ErrorCode } from '../core/errors';
import { AccessReason } from './access.errors';
import type { JWTPayload, JWTVerifyGetKey } from 'jose' with { 'resolution-mode': 'import' };

// jose is an ES module; this package is compiled to CommonJS, so it is loaded once, on first use.
type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
type GetKey = JWTVerifyGetKey;
let joseModule: Promise<Jose> | null = null;
const jose = (): Promise<Jose> => (joseModule ??= import('jose'));

/** What a verified token of an issuer says of its caller, before the claims are checked for shape. */
export interface IssuerClaims {
  id: unknown;
  roles: unknown;
  teams: unknown;
  /** When the token stops being accepted: its `exp` plus the clock skew allowed. */
  expiresAt: Date;
}

const refusal = (reason: AccessReason, message: string) => new AppError(ErrorCode.UNAUTHENTICATED, message, { reason });

/** The issuer's keys could not be had: its JWKS (or discovery document) did not answer, or answered nonsense. */
class KeysUnavailable extends Error {}

/**
 * The identity providers whose tokens this process trusts, by issuer. Each keeps its own key set,
 * fetched on first use and kept `jwksCacheSeconds`; a token signed with a key the set does not hold
 * (a rotated key) fetches it again, at most once every `jwksCooldownSeconds`.
 */
export class OidcIssuers {
  private readonly byIssuer = new Map<string, TrustedIssuer>();

  constructor(config: OidcConfig) {
    for (const settings of config.issuers) this.byIssuer.set(settings.issuer, new TrustedIssuer(settings, config));
  }

  /** The trusted issuer named exactly `iss`, if any. */
  get(iss: string): TrustedIssuer | undefined {
    return this.byIssuer.get(iss);
  }
}

// One set of issuers per configuration: their fetched key sets are shared by every request of the process.
const issuersByConfig = new WeakMap<OidcConfig, OidcIssuers>();
export function oidcIssuers(config: OidcConfig): OidcIssuers {
  let issuers = issuersByConfig.get(config);
  if (!issuers) issuersByConfig.set(config, (issuers = new OidcIssuers(config)));
  return issuers;
}

/** One trusted issuer: verifies its tokens and maps their claims to a principal's id, roles and teams. */
export class TrustedIssuer {
  private keys: Promise<GetKey> | null = null;
  private keysFailedAt: number | null = null;

  constructor(
    private readonly settings: OidcIssuerConfig,
    private readonly config: OidcConfig,
  ) {}

  /**
   * Verifies `token` (whose header names `alg`) as one of this issuer's: its signature by a key of
   * the issuer's JWKS, `iss`, `aud`, `exp` (required) and `nbf`, with the configured clock skew.
   * Throws UNAUTHENTICATED with the reason of the refusal.
   */
  async verify(token: string, alg: unknown): Promise<IssuerClaims> {
    const { issuer, audience, algorithms } = this.settings;
    if (typeof alg !== 'string' || !algorithms.includes(alg)) {
      throw refusal(AccessReason.TOKEN_ALGORITHM_NOT_ALLOWED, `Tokens of ${issuer} must be signed with ${algorithms.join(' or ')}, not ${typeof alg === 'string' ? alg.slice(0, 20) : 'nothing'}`);
    }
    const { jwtVerify, errors } = await jose();
    let payload: JWTPayload;
    try {
      const keys = await this.keySet();
      ({ payload } = await jwtVerify(token, keys, { issuer, audience, algorithms, clockTolerance: this.config.clockSkewSeconds, requiredClaims: ['exp'] }));
    } catch (e) {
      throw this.refusalFor(e, errors);
    }
    return {
      id: withPrefix(claimAt(payload, this.settings.subjectClaim), this.settings.subjectPrefix),
      roles: mapped(claimAt(payload, this.settings.rolesClaim), this.settings.rolePrefix),
      teams: mapped(claimAt(payload, this.settings.teamsClaim), this.settings.teamPrefix),
      expiresAt: new Date(((payload.exp as number) + this.config.clockSkewSeconds) * 1000),
    };
  }

  private refusalFor(e: unknown, errors: Jose['errors']): AppError {
    const { issuer, audience } = this.settings;
    if (e instanceof KeysUnavailable) return refusal(AccessReason.TOKEN_ISSUER_UNREACHABLE, `The keys of ${issuer} could not be fetched (${e.message}): try again later`);
    if (e instanceof errors.JWTExpired) return refusal(AccessReason.TOKEN_EXPIRED, 'The token has expired');
    if (e instanceof errors.JWTClaimValidationFailed) {
      if (e.claim === 'nbf' && e.reason === 'check_failed') return refusal(AccessReason.TOKEN_NOT_YET_VALID, 'The token is not valid yet (nbf)');
      if (e.claim === 'aud' && e.reason === 'check_failed') return refusal(AccessReason.TOKEN_AUDIENCE_MISMATCH, `The token is not meant for this server: its aud must name ${audience.join(' or ')}`);
      if (e.claim === 'iss' && e.reason === 'check_failed') return refusal(AccessReason.TOKEN_ISSUER_UNKNOWN, 'The token was not issued by an issuer this server trusts');
      return refusal(AccessReason.TOKEN_CLAIMS_INVALID, `The token's ${e.claim} claim is ${e.reason === 'missing' ? 'missing' : 'invalid'}`);
    }
    if (e instanceof errors.JWKSNoMatchingKey) return refusal(AccessReason.TOKEN_KEY_UNKNOWN, `No key of ${issuer} matches the token (its kid and alg)`);
    if (e instanceof errors.JWKSMultipleMatchingKeys) return refusal(AccessReason.TOKEN_KEY_UNKNOWN, `Several keys of ${issuer} match the token: it must name its key (kid)`);
    if (e instanceof errors.JWSSignatureVerificationFailed) return refusal(AccessReason.TOKEN_SIGNATURE_INVALID, 'The token signature does not verify');
    if (e instanceof errors.JOSEAlgNotAllowed) return refusal(AccessReason.TOKEN_ALGORITHM_NOT_ALLOWED, `Tokens of ${issuer} must be signed with ${this.settings.algorithms.join(' or ')}`);
    return refusal(AccessReason.TOKEN_MALFORMED, 'The token is not a well-formed signed JWT');
  }

  /**
   * The issuer's key set: from `jwksUri`, or from the `jwks_uri` of its discovery document. A failed
   * discovery is tried again on a later token, at most once every `jwksCooldownSeconds`.
   */
  private keySet(): Promise<GetKey> {
    const retry = this.keysFailedAt !== null && Date.now() - this.keysFailedAt >= this.config.jwksCooldownSeconds * 1000;
    if (!this.keys || retry) {
      this.keysFailedAt = null;
      const keys = this.jwksUri().then((uri) => this.remoteKeys(uri));
      keys.catch(() => (this.keysFailedAt = Date.now()));
      this.keys = keys;
    }
    return this.keys;
  }

  private async remoteKeys(uri: URL): Promise<GetKey> {
    const { createRemoteJWKSet, errors } = await jose();
    const remote = createRemoteJWKSet(uri, {
      timeoutDuration: this.config.jwksTimeoutMs,
      cooldownDuration: this.config.jwksCooldownSeconds * 1000,
      cacheMaxAge: this.config.jwksCacheSeconds * 1000,
    });
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (e) {
        // No key for the token is the token's fault; anything else is the key set's (not fetched, not JSON, not a JWKS).
        if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) throw e;
        throw new KeysUnavailable(describe(e), { cause: e });
      }
    };
  }

  private async jwksUri(): Promise<URL> {
    if (this.settings.jwksUri) return new URL(this.settings.jwksUri);
    const { issuer } = this.settings;
    const discovery = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let doc: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const res = await fetch(discovery, { redirect: 'manual', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.config.jwksTimeoutMs) });
      if (res.status !== 200) throw new Error(`discovery answered ${res.status}`);
      doc = (await res.json()) as typeof doc;
    } catch (e) {
      throw new KeysUnavailable(describe(e), { cause: e });
    }
    // OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it was fetched for.
    if (doc?.issuer !== issuer) throw new KeysUnavailable('its discovery document names another issuer');
    if (typeof doc.jwks_uri !== 'string' || !URL.canParse(doc.jwks_uri)) throw new KeysUnavailable('its discovery document has no jwks_uri');
    const uri = new URL(doc.jwks_uri);
    if (uri.protocol !== 'https:' && (this.config.httpsOnly || uri.protocol !== 'http:')) throw new KeysUnavailable('its jwks_uri is not https');
    return uri;
  }
}

function describe(e: unknown): string {
  const err = e as { name?: string; message?: string; cause?: { code?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'JWKSTimeout') return 'timed out';
  return err?.cause?.code ?? err?.message?.slice(0, 100) ?? 'failed';
}

/** A claim by name; a name with dots that is not itself a claim is a path (`realm_access.roles`). */
function claimAt(payload: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  let at: unknown = payload;
  for (const part of name.split('.')) {
    if (!at || typeof at !== 'object' || Array.isArray(at) || !Object.hasOwn(at, part)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

function withPrefix(value: unknown, prefix: string): unknown {
  return typeof value === 'string' && value ? prefix + value : value;
}

/**
 * Names from a roles or teams claim: none when it is absent, one when it is a string; with a prefix,
 * only the entries that carry it, without it. Anything else is left as it is, to be refused.
 */
function mapped(value: unknown, prefix: string): unknown {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) return value;
  return prefix ? list.filter((v) => v.startsWith(prefix) && v.length > prefix.length).map((v) => v.slice(prefix.length)) : list;
}
