import { Arg, Ctx, Field, FieldResolver, ID, Mutation, ObjectType, Query, Resolver, Root, Subscription } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { TOPICS } from '../core/events';
import { eventContext } from '../core/subscription-context';
import { authorizeField, Policy } from '../core/policy';
import { downloadLink } from './audit-export.http';
import { AuditExport, AuditExportFormat, AuditExportStatus } from './audit-export.entity';
import { loadExport, requestFileExport } from './audit-export.service';
import { AuditExportFilterInput } from './audit.inputs';

const EXPORT = { action: 'export', subject: 'AuditEvent' } as const;

@ObjectType({ description: 'Links to a finished file export; they stop working at expiresAt' })
export class AuditExportDownload {
  @Field({ description: 'Relative to the server: the export file' })
  url!: string;

  @Field({ description: 'Relative to the server: its signed manifest (.manifest.json)' })
  manifestUrl!: string;

  @Field({ description: 'When the links stop working; read the export again for fresh ones' })
  expiresAt!: Date;
}

@Resolver(() => AuditExport)
export class AuditExportResolver {
  @Mutation(() => AuditExport, { nullable: true, description: 'Queues an export of the audit trail to a file; follow it with auditExportUpdated' })
  @Policy(EXPORT)
  requestAuditExport(
    @Ctx() ctx: RequestContext,
    @Arg('filter', () => AuditExportFilterInput, { nullable: true, description: 'Which events it shows (the rest of its range appear by hash only); every event when left out' }) filter?: AuditExportFilterInput | null,
    @Arg('format', () => AuditExportFormat, { defaultValue: AuditExportFormat.NDJSON, description: 'The file format' }) format: AuditExportFormat = AuditExportFormat.NDJSON,
  ) {
    return requestFileExport(ctx, format, { ...(filter ?? {}) });
  }

  @Query(() => AuditExport, { nullable: true, description: 'An export: status, progress, manifest and, once written, its download links' })
  @Policy(EXPORT)
  auditExport(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The AuditExport id' }) id: string) {
    return loadExport(ctx, id);
  }

  @Subscription(() => AuditExport, {
    description: 'The export each time its status or progress changes',
    subscribe: async ({ args, context }) => {
      const ctx = context as RequestContext;
      authorizeField(ctx, EXPORT);
      const exp = await loadExport(ctx, args.id as string);
      return ctx.app.events!.subscribe(TOPICS.auditExportUpdated, exp.id);
    },
  })
  @Policy(EXPORT)
  async auditExportUpdated(@Root() event: { id: string }, @Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The AuditExport id to follow' }) id: string): Promise<AuditExport> {
    // Checked again for every event: a credential revoked meanwhile stops here.
    const now = await eventContext(ctx);
    authorizeField(now, EXPORT);
    void event;
    // The row as it is now, through the caller's own check.
    return loadExport(now, id);
  }

  @FieldResolver(() => AuditExportDownload, { nullable: true, description: 'Present once a file export has SUCCEEDED' })
  download(@Root() exp: AuditExport, @Ctx() ctx: RequestContext): AuditExportDownload | null {
    if (!exp.asFile || exp.status !== AuditExportStatus.SUCCEEDED || !exp.fileSha256) return null;
    const file = downloadLink(ctx.app, exp, 'file');
    const manifest = downloadLink(ctx.app, exp, 'manifest');
    return Object.assign(new AuditExportDownload(), { url: file.url, manifestUrl: manifest.url, expiresAt: file.expiresAt });
  }
}
