import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * How an audit event's actor acted when not in a request of its own: the jobs it came through and
 * whom it acted for. Null on every event written before (their hashes do not cover it).
 */
export class AuditEventVia1795313000000 implements MigrationInterface {
    name = 'AuditEventVia1795313000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "audit_event" ADD "via" jsonb`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "audit_event" DROP COLUMN "via"`);
    }

}
