import { MigrationInterface, QueryRunner } from "typeorm";

/** Notification channels: a team's webhook, Slack and PagerDuty destinations, their secrets sealed (AES-256-GCM). */
export class NotificationChannels1795316600000 implements MigrationInterface {
    name = 'NotificationChannels1795316600000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TYPE "public"."notification_channel_kind" AS ENUM('WEBHOOK', 'SLACK', 'PAGERDUTY')`);
        await queryRunner.query(`CREATE TABLE "notification_channel" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "team_id" uuid NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "name" text NOT NULL, "kind" "public"."notification_channel_kind" NOT NULL, "url" text NOT NULL, "secret_ciphertext" text, "updated_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_b7ba41c966411ee2ae3df2c9ad9" UNIQUE ("team_id", "name"), CONSTRAINT "PK_50b36f3daa5dd86f7e707740b23" PRIMARY KEY ("id"))`);
        await queryRunner.query(`ALTER TABLE "notification_channel" ADD CONSTRAINT "FK_4be5bb8d7f38a6c4573361c8946" FOREIGN KEY ("team_id") REFERENCES "team"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "notification_channel" DROP CONSTRAINT "FK_4be5bb8d7f38a6c4573361c8946"`);
        await queryRunner.query(`DROP TABLE "notification_channel"`);
        await queryRunner.query(`DROP TYPE "public"."notification_channel_kind"`);
    }

}
