import { MigrationInterface, QueryRunner } from "typeorm";

/** EMAIL notification channels: the kind's value (their recipients live in `url`, as a `mailto:` URI). */
export class EmailNotificationChannels1795317500000 implements MigrationInterface {
    name = 'EmailNotificationChannels1795317500000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TYPE "public"."notification_channel_kind" ADD VALUE IF NOT EXISTS 'EMAIL'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        // The EMAIL channels go with the value (a type cannot lose a value in use).
        await queryRunner.query(`DELETE FROM "notification_channel" WHERE "kind" = 'EMAIL'`);
        await queryRunner.query(`ALTER TYPE "public"."notification_channel_kind" RENAME TO "notification_channel_kind_old"`);
        await queryRunner.query(`CREATE TYPE "public"."notification_channel_kind" AS ENUM('WEBHOOK', 'SLACK', 'PAGERDUTY')`);
        await queryRunner.query(`ALTER TABLE "notification_channel" ALTER COLUMN "kind" TYPE "public"."notification_channel_kind" USING "kind"::"text"::"public"."notification_channel_kind"`);
        await queryRunner.query(`DROP TYPE "public"."notification_channel_kind_old"`);
    }
}
