import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit trail is append-only in the database itself: UPDATE, DELETE and TRUNCATE of
 * audit_event raise an error. (A superuser can still disable the trigger; the hash chain and the
 * chain head make that tampering visible to `audit verify`.)
 */
export class AuditAppendOnly1795298200000 implements MigrationInterface {
  name = 'AuditAppendOnly1795298200000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`CREATE TRIGGER audit_event_no_update BEFORE UPDATE OR DELETE ON audit_event FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()`);
    await q.query(`CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()`);
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER audit_event_no_truncate ON audit_event`);
    await q.query(`DROP TRIGGER audit_event_no_update ON audit_event`);
    await q.query(`DROP FUNCTION audit_event_append_only()`);
  }
}
