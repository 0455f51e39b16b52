import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Notification routing: notifications (written with the change they tell of), routing rules,
 * silences and deliveries (status, attempts, idempotency key); alerts about no deployment (a
 * channel's NOTIFICATION_FAILED).
 */
export class NotificationRouting1795318000000 implements MigrationInterface {
    name = 'NotificationRouting1795318000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "notification" ("id" uuid NOT NULL, "team_id" uuid NOT NULL, "kind" text NOT NULL, "severity" text NOT NULL, "action" text NOT NULL, "subject" text NOT NULL, "dedup_key" text NOT NULL, "deployment_id" uuid, "environment" text, "alert_id" uuid, "alert_kind" text, "summary" text NOT NULL, "data" jsonb NOT NULL DEFAULT '{}', "request_id" text, "occurred_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "routed_at" TIMESTAMP(3) WITH TIME ZONE, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_705b6c7cdf9b2c2ff7ac7872cb7" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_8bdc07e9c41ce8d83730f0f5d8" ON "notification"  ("created_at") `);
        await queryRunner.query(`CREATE INDEX "IDX_8e8b1b454d4b31a40b4e0a62f5" ON "notification"  ("alert_id") `);
        await queryRunner.query(`CREATE TABLE "notification_delivery" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "team_id" uuid NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "notification_id" uuid NOT NULL, "channel_id" uuid, "channel_name" text NOT NULL, "rule_id" uuid, "escalation" boolean NOT NULL DEFAULT false, "kind" text NOT NULL, "severity" text NOT NULL, "summary" text NOT NULL, "alert_id" uuid, "status" text NOT NULL, "attempts" integer NOT NULL DEFAULT '0', "last_error" text, "last_status" integer, "next_attempt_at" TIMESTAMP(3) WITH TIME ZONE, "delivered_at" TIMESTAMP(3) WITH TIME ZONE, "latency_ms" integer, "occurred_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "digest_due_at" TIMESTAMP(3) WITH TIME ZONE, "digest_delivery_id" uuid, "silence_id" uuid, "lease_until" TIMESTAMP(3) WITH TIME ZONE, CONSTRAINT "UQ_573c6c8f9de8f7237b1aeb174eb" UNIQUE ("notification_id", "channel_id", "escalation"), CONSTRAINT "PK_109dea88c25343da49d86de6bfd" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_df75f169dd9faa0daead4a85a7" ON "notification_delivery"  ("created_at") WHERE "status" IN ('PENDING', 'RETRYING', 'SENDING', 'HELD_FOR_DIGEST')`);
        await queryRunner.query(`CREATE INDEX "IDX_6da5794bf30bf3aeb69e306e91" ON "notification_delivery"  ("channel_id", "status") `);
        await queryRunner.query(`CREATE INDEX "IDX_9c02ad73b9c6ed52cb99eede8f" ON "notification_delivery"  ("created_at") `);
        await queryRunner.query(`CREATE INDEX "IDX_7cf3e82aac7e458bdce5777b95" ON "notification_delivery"  ("alert_id") `);
        await queryRunner.query(`CREATE INDEX "IDX_ef7d3acc130c3fef3f363449c9" ON "notification_delivery"  ("team_id", "created_at") `);
        await queryRunner.query(`CREATE TABLE "notification_rule" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "team_id" uuid NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "name" text NOT NULL, "channel_id" uuid NOT NULL, "deployment_id" uuid, "environment" text, "kinds" text array NOT NULL DEFAULT '{}', "alert_kinds" text array NOT NULL DEFAULT '{}', "min_severity" text NOT NULL, "action" text, "digest_seconds" integer NOT NULL, "escalation_channel_id" uuid, "escalate_after_seconds" integer, "enabled" boolean NOT NULL DEFAULT true, "updated_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_2cd6b97b32ea61271530f2531fd" UNIQUE ("team_id", "name"), CONSTRAINT "PK_7b7cb151ab8af7b71553019a730" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE TABLE "notification_silence" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "team_id" uuid NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "deployment_id" uuid, "environment" text, "kinds" text array NOT NULL DEFAULT '{}', "alert_kinds" text array NOT NULL DEFAULT '{}', "severities" text array NOT NULL DEFAULT '{}', "comment" text NOT NULL, "starts_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "ends_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "expired_at" TIMESTAMP(3) WITH TIME ZONE, "expired_by" text, CONSTRAINT "PK_b38175df61f1b367020e0ec2dc0" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_e81e0b6d756253214dc215814c" ON "notification_silence"  ("team_id", "ends_at") `);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "deployment_id" DROP NOT NULL`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "model_version_id" DROP NOT NULL`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" ADD VALUE IF NOT EXISTS 'NOTIFICATION_FAILED'`);
        await queryRunner.query(`ALTER TABLE "notification_channel" ADD "failing_since" TIMESTAMP(3) WITH TIME ZONE`);
        await queryRunner.query(`ALTER TABLE "notification_delivery" ADD CONSTRAINT "FK_2118b08cef6394f4b296b4ef8e0" FOREIGN KEY ("team_id") REFERENCES "team"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "notification_rule" ADD CONSTRAINT "FK_ba7537e65164d1a32f5429c9610" FOREIGN KEY ("team_id") REFERENCES "team"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
        await queryRunner.query(`ALTER TABLE "notification_silence" ADD CONSTRAINT "FK_4042b26a149c7cac1681e89adab" FOREIGN KEY ("team_id") REFERENCES "team"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DELETE FROM "alert" WHERE "kind" = 'NOTIFICATION_FAILED'`);
        await queryRunner.query(`ALTER TABLE "notification_channel" DROP COLUMN "failing_since"`);
        await queryRunner.query(`ALTER TABLE "notification_silence" DROP CONSTRAINT "FK_4042b26a149c7cac1681e89adab"`);
        await queryRunner.query(`ALTER TABLE "notification_rule" DROP CONSTRAINT "FK_ba7537e65164d1a32f5429c9610"`);
        await queryRunner.query(`ALTER TABLE "notification_delivery" DROP CONSTRAINT "FK_2118b08cef6394f4b296b4ef8e0"`);
        await queryRunner.query(`CREATE TYPE "public"."alert_kind_old" AS ENUM('DRIFT', 'PREDICTION_DRIFT', 'LATENCY', 'ERROR_RATE', 'RUN_BUDGET', 'ROLLOUT_STALLED', 'QUALITY', 'APPROVAL_REQUIRED')`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "kind" TYPE "public"."alert_kind_old" USING "kind"::"text"::"public"."alert_kind_old"`);
        await queryRunner.query(`DROP TYPE "public"."alert_kind"`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind_old" RENAME TO "alert_kind"`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "model_version_id" SET NOT NULL`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "deployment_id" SET NOT NULL`);
        await queryRunner.query(`DROP INDEX "public"."IDX_e81e0b6d756253214dc215814c"`);
        await queryRunner.query(`DROP TABLE "notification_silence"`);
        await queryRunner.query(`DROP TABLE "notification_rule"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_ef7d3acc130c3fef3f363449c9"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_9c02ad73b9c6ed52cb99eede8f"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_7cf3e82aac7e458bdce5777b95"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_6da5794bf30bf3aeb69e306e91"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_df75f169dd9faa0daead4a85a7"`);
        await queryRunner.query(`DROP TABLE "notification_delivery"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_8e8b1b454d4b31a40b4e0a62f5"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_8bdc07e9c41ce8d83730f0f5d8"`);
        await queryRunner.query(`DROP TABLE "notification"`);
    }

}
