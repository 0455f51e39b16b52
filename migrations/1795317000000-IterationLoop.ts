import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * The iteration loop: a deployment's retrain and promotion policies, its iterations (at most one in
 * flight per deployment), the APPROVAL_REQUIRED alert kind, and the audit trail searchable by the
 * request that caused its events (an iteration's whole chain).
 */
export class IterationLoop1795317000000 implements MigrationInterface {
    name = 'IterationLoop1795317000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TYPE "public"."iteration_status" AS ENUM('SAMPLING', 'TRAINING', 'GATING', 'SHADOW', 'AWAITING_APPROVAL', 'CANARY', 'PROMOTED', 'HANDED_OFF', 'REJECTED', 'ROLLED_BACK', 'FAILED')`);
        await queryRunner.query(`CREATE TYPE "public"."iteration_trigger_kind" AS ENUM('DRIFT', 'QUALITY', 'LABEL_VOLUME', 'SCHEDULE')`);
        await queryRunner.query(`CREATE TABLE "iteration" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "team_id" uuid NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "deployment_id" uuid NOT NULL, "status" "public"."iteration_status" NOT NULL, "trigger_kind" "public"."iteration_trigger_kind" NOT NULL, "trigger" jsonb NOT NULL, "alert_id" uuid, "champion_version_id" uuid NOT NULL, "train_dataset_version_id" uuid, "holdout_dataset_version_id" uuid, "training_run_id" uuid, "candidate_version_id" uuid, "shadow_rollout_id" uuid, "canary_rollout_id" uuid, "approval_alert_id" uuid, "policy" jsonb NOT NULL, "steps" jsonb NOT NULL, "message" text, "actors" jsonb NOT NULL, "lease_until" TIMESTAMP WITH TIME ZONE, "lease_owner" text, "updated_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "finished_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "PK_53b96079dea7a00e9a04e32cf10" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE UNIQUE INDEX "one_active_iteration_per_deployment" ON "iteration"  ("deployment_id") WHERE "status" IN ('SAMPLING', 'TRAINING', 'GATING', 'SHADOW', 'AWAITING_APPROVAL', 'CANARY')`);
        await queryRunner.query(`CREATE INDEX "IDX_64301e61e7675ffb6894bc57f7" ON "iteration"  ("deployment_id", "created_at") `);
        await queryRunner.query(`CREATE TABLE "loop_policy" ("deployment_id" uuid NOT NULL, "team_id" uuid NOT NULL, "retrain" jsonb, "retrain_set_by" jsonb, "promotion" jsonb, "promotion_set_by" jsonb, "updated_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_dad34c8c3c3c63a0f83c4501e77" PRIMARY KEY ("deployment_id"))`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" ADD VALUE IF NOT EXISTS 'APPROVAL_REQUIRED'`);
        await queryRunner.query(`ALTER TABLE "training_run" ADD "champion_comparison_deferred" boolean NOT NULL DEFAULT false`);
        await queryRunner.query(`CREATE INDEX "IDX_118cdf961d48b5b7f138e09e2e" ON "audit_event"  ("request_id", "seq") `);
        await queryRunner.query(`ALTER TABLE "iteration" ADD CONSTRAINT "FK_b8f9401d6aa0a35baff8391c60c" FOREIGN KEY ("team_id") REFERENCES "team"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "training_run" DROP COLUMN "champion_comparison_deferred"`);
        // The APPROVAL_REQUIRED alerts go with the value (a type cannot lose a value in use).
        await queryRunner.query(`DELETE FROM "alert" WHERE "kind" = 'APPROVAL_REQUIRED'`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" RENAME TO "alert_kind_old"`);
        await queryRunner.query(`CREATE TYPE "public"."alert_kind" AS ENUM('DRIFT', 'PREDICTION_DRIFT', 'LATENCY', 'ERROR_RATE', 'RUN_BUDGET', 'ROLLOUT_STALLED', 'QUALITY')`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "kind" TYPE "public"."alert_kind" USING "kind"::"text"::"public"."alert_kind"`);
        await queryRunner.query(`DROP TYPE "public"."alert_kind_old"`);
        await queryRunner.query(`ALTER TABLE "iteration" DROP CONSTRAINT "FK_b8f9401d6aa0a35baff8391c60c"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_118cdf961d48b5b7f138e09e2e"`);
        await queryRunner.query(`DROP TABLE "loop_policy"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_64301e61e7675ffb6894bc57f7"`);
        await queryRunner.query(`DROP INDEX "public"."one_active_iteration_per_deployment"`);
        await queryRunner.query(`DROP TABLE "iteration"`);
        await queryRunner.query(`DROP TYPE "public"."iteration_trigger_kind"`);
        await queryRunner.query(`DROP TYPE "public"."iteration_status"`);
    }

}
