import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildSchema as schemaFromSdl, isEnumType, type GraphQLSchema } from 'graphql';
import ts from 'typescript';
import { ERROR_CATALOGUE } from '../../src/app/error-catalogue';
import { ErrorCode } from '../../src/core/errors';
import { buildAppSchema } from '../../src/app/schema';
import { startTestServer, type TestServer } from '../support/harness';
import { repoRoot } from '../support/repo';

const catalogue = ERROR_CATALOGUE as Readonly<Record<string, { codes: readonly string[]; description: string }>>;
const declared = Object.keys(catalogue).sort();

function enumOf(schema: GraphQLSchema, name: string): Array<{ name: string; description: string | null | undefined }> {
  const type = schema.getType(name);
  assert.ok(type && isEnumType(type), `${name} is an enum of the schema`);
  return type.getValues().map((v) => ({ name: v.name, description: v.description }));
}

const expectedEnum = () => declared.map((name) => ({ name, description: catalogue[name].description }));

// A string that looks like a reason: what a client would branch on.
const REASON_LIKE = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;
// Calls whose arguments are reasons: error helpers (rolloutError, registryError, errorBody, AppError…), refusals, subscription ends.
const TAKES_REASON = /error|refuse|endSubscription/i;

function nameOf(node: ts.Node | undefined): string | undefined {
  if (!node) return undefined;
  if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node) || ts.isStringLiteral(node)) return node.text;
  if (ts.isPropertyAccessExpression(node)) return node.name.text;
  if (ts.isElementAccessExpression(node)) return nameOf(node.argumentExpression);
  return undefined;
}

const isReasonName = (node: ts.Node | undefined) => nameOf(node) === 'reason';

/**
 * Whether the literal is a reason thrown or sent: the value (directly, or as a branch of `?:`, `??`
 * or `||`) of a `reason` property, variable or assignment, compared with a `reason`, or an argument
 * of a call that takes one.
 */
function inReasonPosition(literal: ts.Node): boolean {
  let n: ts.Node = literal;
  for (;;) {
    const p = n.parent;
    if (ts.isParenthesizedExpression(p) || ts.isAsExpression(p) || ts.isSatisfiesExpression(p) || ts.isNonNullExpression(p)) n = p;
    else if (ts.isConditionalExpression(p) && p.condition !== n) n = p;
    else if (ts.isBinaryExpression(p) && p.right === n && [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(p.operatorToken.kind)) n = p;
    else break;
  }
  const p = n.parent;
  if (ts.isPropertyAssignment(p) && p.initializer === n) return isReasonName(p.name);
  if (ts.isVariableDeclaration(p) && p.initializer === n) return isReasonName(p.name);
  if (ts.isBinaryExpression(p)) {
    const other = p.left === n ? p.right : p.left;
    const op = p.operatorToken.kind;
    if (op === ts.SyntaxKind.EqualsToken && p.right === n) return isReasonName(p.left);
    if ([ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken].includes(op)) return isReasonName(other);
  }
  if ((ts.isCallExpression(p) || ts.isNewExpression(p)) && p.arguments?.includes(n as ts.Expression)) return TAKES_REASON.test(nameOf(p.expression) ?? '');
  return false;
}

/** Every reason-like string literal in a reason position of a TypeScript source text, with its line. */
function reasonsIn(fileName: string, text: string): Array<{ reason: string; at: string }> {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: Array<{ reason: string; at: string }> = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && REASON_LIKE.test(node.text) && inReasonPosition(node)) {
      found.push({ reason: node.text, at: `${fileName}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}` });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const root = repoRoot();
const sources = () => ['src', 'jobs'].flatMap((d) => sourceFiles(path.join(root, d)));

describe('the error catalogue', () => {
  it('is the ErrorReason enum of the committed schema/schema.graphql, descriptions included', () => {
    const committed = schemaFromSdl(readFileSync(path.join(root, 'schema/schema.graphql'), 'utf8'));
    assert.deepEqual(enumOf(committed, 'ErrorReason'), expectedEnum());
    // Enum values are emitted in their declared order (see emittedSchema).
    assert.deepEqual(enumOf(committed, 'ErrorCode').map((v) => v.name), Object.values(ErrorCode));
  });

  it('is the ErrorReason enum of the schema the server builds', async () => {
    assert.deepEqual(enumOf(await buildAppSchema(), 'ErrorReason'), expectedEnum());
  });

  it('gives every reason at least one code of the closed set and a one-line description', () => {
    assert.ok(declared.length >= 70, `expected every domain's reasons, found ${declared.length}`);
    for (const reason of declared) {
      const { codes, description } = catalogue[reason];
      assert.ok(codes.length > 0 && codes.every((c) => (Object.values(ErrorCode) as string[]).includes(c)), `${reason}: codes ${codes.join(', ')}`);
      assert.match(description, /^\S.*\.$/, `${reason}: one sentence`);
      assert.ok(!description.includes('\n'), `${reason}: one line`);
    }
  });

  it("says in each reason's TSDoc what the catalogue says of it", () => {
    const files = sources().filter((f) => f.endsWith('.errors.ts') || f.endsWith(path.join('core', 'error-reasons.ts')));
    assert.ok(files.length >= 9, `the reason files: ${files.join(', ')}`);
    const documented = new Set<string>();
    for (const file of files) {
      const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      source.forEachChild((node) => {
        if (!ts.isEnumDeclaration(node) || !node.name.text.endsWith('Reason')) return;
        for (const member of node.members) {
          const value = member.initializer && ts.isStringLiteral(member.initializer) ? member.initializer.text : undefined;
          assert.ok(value && catalogue[value], `${file}: ${node.name.text}.${nameOf(member.name)} is in the catalogue`);
          const doc = ts.getJSDocCommentsAndTags(member).map((d) => ts.getTextOfJSDocComment((d as ts.JSDoc).comment) ?? '').join(' ').trim();
          assert.equal(doc, catalogue[value].description, `${file}: the TSDoc of ${value} and its catalogue description differ`);
          documented.add(value);
        }
      });
    }
    assert.deepEqual([...documented].sort(), declared, 'every reason is declared in an enum of a reason file');
  });

  it('finds reason literals thrown or sent, in every form the scan knows', () => {
    const sample = [
      "throw badInput('bad', { field: 'x', reason: 'SAMPLE_PROPERTY' });",
      "throw new AppError(ErrorCode.CONFLICT, 'no', { reason: ok ? 'SAMPLE_BRANCH' : Known.REASON });",
      "const reason = 'SAMPLE_VARIABLE';",
      "e.details.reason = e.details.reason ?? 'SAMPLE_DEFAULT';",
      "throw rolloutError('SAMPLE_ARGUMENT', 'message');",
      "res.status(400).json(errorBody(code, 'message', requestId, 'SAMPLE_BODY'));",
      "if (err.extensions.reason === 'SAMPLE_COMPARED') retry();",
      // Not reasons: a message, a status, an audit reason in words.
      "throw badInput('BAD INPUT', { status: 'FAILED' }); audit(ctx, { reason: 'approved after review' });",
    ].join('\n');
    assert.deepEqual(
      reasonsIn('sample.ts', sample).map((r) => r.reason),
      ['SAMPLE_PROPERTY', 'SAMPLE_BRANCH', 'SAMPLE_VARIABLE', 'SAMPLE_DEFAULT', 'SAMPLE_ARGUMENT', 'SAMPLE_BODY', 'SAMPLE_COMPARED'],
    );
  });

  it('declares every reason the code under src/ and jobs/ throws or sends', () => {
    const files = sources();
    assert.ok(files.length > 100, `scanned ${files.length} files`);
    const undeclared = files
      .flatMap((f) => reasonsIn(path.relative(root, f), readFileSync(f, 'utf8')))
      .filter((r) => !catalogue[r.reason])
      .map((r) => `${r.reason} (${r.at})`);
    assert.deepEqual(undeclared, [], 'reasons sent but not declared in a <domain>.errors.ts (or src/core/error-reasons.ts)');
  });

  describe('over HTTP', () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer();
    });
    after(async () => t?.stop());

    it('lists every reason with its codes and description to any caller, without a credential', async () => {
      const r = await t.gql(null, '{ errorReasons { reason codes description } }');
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const listed = r.data.errorReasons as Array<{ reason: string; codes: string[]; description: string }>;
      assert.deepEqual(
        listed.map((e) => e.reason),
        declared,
      );
      for (const e of listed) {
        assert.ok(e.description.length > 10, `${e.reason}: a description`);
        assert.ok(e.codes.length > 0, `${e.reason}: a code`);
        assert.deepEqual(e.codes, catalogue[e.reason].codes, e.reason);
      }
    });

    it('answers real failures with a listed reason, under a code the catalogue gives it', async () => {
      const admin = t.token(['admin'], [], 'catalogue-admin');
      const failures: Array<[string | null, string]> = [
        [null, '{ errorReasons { reason '],
        [null, '{ errorReasons { nonsense } }'],
        [admin, '{ node(id: "!!") { id } }'],
        [admin, '{ teams(first: 0) { totalCount } }'],
      ];
      const seen: string[] = [];
      for (const [token, query] of failures) {
        const r = await t.gql(token, query);
        const ext = r.errors?.[0]?.extensions;
        assert.ok(ext?.reason, `${query}: ${JSON.stringify(r.errors)}`);
        assert.ok(catalogue[ext.reason], `${ext.reason} is listed`);
        assert.ok(catalogue[ext.reason].codes.includes(ext.code), `${ext.reason} comes with ${ext.code}`);
        seen.push(ext.reason);
      }
      assert.deepEqual(seen, ['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'MALFORMED_ID', 'PAGE_SIZE']);
    });
  });
});
