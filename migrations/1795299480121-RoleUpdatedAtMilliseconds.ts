import { MigrationInterface, QueryRunner } from "typeorm";

/** Roles are paged by updated_at: keyset cursors need the millisecond precision JavaScript dates carry. */
export class RoleUpdatedAtMilliseconds1795299480121 implements MigrationInterface {
    name = 'RoleUpdatedAtMilliseconds1795299480121'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "role" ALTER COLUMN "updated_at" TYPE TIMESTAMP(3) WITH TIME ZONE`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "role" ALTER COLUMN "updated_at" TYPE TIMESTAMP(6) WITH TIME ZONE`);
    }

}
