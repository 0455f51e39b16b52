import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * One row naming this database's audit chain, for anchors published outside the database. It is
 * written here, once, and append-only like the chain (a trigger refuses UPDATE, DELETE and
 * TRUNCATE), so a dump restored elsewhere keeps it and a fresh database gets its own.
 */
export class AuditChainIdentity1795309200000 implements MigrationInterface {
  name = 'AuditChainIdentity1795309200000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "audit_chain_identity" ("id" smallint NOT NULL, "database_id" uuid NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL, CONSTRAINT "PK_9f3b9f73b138d38de568b34a976" PRIMARY KEY ("id"))`,
    );
    await q.query(`INSERT INTO "audit_chain_identity" ("id", "database_id", "created_at") VALUES (1, gen_random_uuid(), now())`);
    await q.query(`CREATE FUNCTION audit_chain_identity_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_chain_identity is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`CREATE TRIGGER audit_chain_identity_no_update BEFORE UPDATE OR DELETE ON audit_chain_identity FOR EACH ROW EXECUTE FUNCTION audit_chain_identity_append_only()`);
    await q.query(`CREATE TRIGGER audit_chain_identity_no_truncate BEFORE TRUNCATE ON audit_chain_identity FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_identity_append_only()`);
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "audit_chain_identity"`);
    await q.query(`DROP FUNCTION audit_chain_identity_append_only()`);
  }
}
