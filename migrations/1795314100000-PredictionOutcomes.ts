import { MigrationInterface, QueryRunner } from "typeorm";

/** Outcomes (ground truth) of logged predictions: one row per (prediction, row index). */
export class PredictionOutcomes1795314100000 implements MigrationInterface {
    name = 'PredictionOutcomes1795314100000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "prediction_outcome" ("prediction_id" uuid NOT NULL, "row" integer NOT NULL, "deployment_id" uuid NOT NULL, "team_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, "label" jsonb NOT NULL, "label_sha256" text NOT NULL, "observed_at" TIMESTAMP(3) WITH TIME ZONE, "recorded_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "recorded_by" text NOT NULL, "corrections" integer NOT NULL DEFAULT '0', CONSTRAINT "PK_d75ef8234c5a6df12b03c7f5942" PRIMARY KEY ("prediction_id", "row"))`);
        await queryRunner.query(`CREATE INDEX "IDX_6fcbd7ea07b2eeda8c76d76170" ON "prediction_outcome"  ("deployment_id", "recorded_at") `);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."IDX_6fcbd7ea07b2eeda8c76d76170"`);
        await queryRunner.query(`DROP TABLE "prediction_outcome"`);
    }

}
