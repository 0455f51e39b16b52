import { MigrationInterface, QueryRunner } from "typeorm";

/** Rollout steps judged on evidence: a minimum sample, a longest hold, the significance of the baseline comparison, the agreement a shadow needs, the last verdict; ROLLOUT_STALLED alerts. */
export class RolloutEvidence1795313400000 implements MigrationInterface {
    name = 'RolloutEvidence1795313400000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "rollout" ADD "min_requests" integer NOT NULL DEFAULT '200'`);
        await queryRunner.query(`ALTER TABLE "rollout" ADD "max_hold_seconds" integer NOT NULL DEFAULT '900'`);
        await queryRunner.query(`ALTER TABLE "rollout" ADD "significance" double precision NOT NULL DEFAULT '0.05'`);
        await queryRunner.query(`ALTER TABLE "rollout" ADD "min_agreement" double precision NOT NULL DEFAULT '0.95'`);
        await queryRunner.query(`ALTER TABLE "rollout" ADD "last_verdict" jsonb`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" ADD VALUE IF NOT EXISTS 'ROLLOUT_STALLED'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        // PostgreSQL cannot drop one value of an enum: the type is rebuilt without it.
        await queryRunner.query(`DELETE FROM "alert" WHERE "kind" = 'ROLLOUT_STALLED'`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" RENAME TO "alert_kind_old"`);
        await queryRunner.query(`CREATE TYPE "public"."alert_kind" AS ENUM('DRIFT', 'PREDICTION_DRIFT', 'LATENCY', 'ERROR_RATE', 'RUN_BUDGET')`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "kind" TYPE "public"."alert_kind" USING "kind"::text::"public"."alert_kind"`);
        await queryRunner.query(`DROP TYPE "public"."alert_kind_old"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP COLUMN "last_verdict"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP COLUMN "min_agreement"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP COLUMN "significance"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP COLUMN "max_hold_seconds"`);
        await queryRunner.query(`ALTER TABLE "rollout" DROP COLUMN "min_requests"`);
    }
}
