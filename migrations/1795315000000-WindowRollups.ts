import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Window rollups maintained on the write path (counts, latency sketches, histograms on each
 * version's rollup bins, quality statistics), merged by `rollup_add`; they replace the per-window
 * serving figures (`prediction_window`). QUALITY alerts.
 */
export class WindowRollups1795315000000 implements MigrationInterface {
    name = 'WindowRollups1795315000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        // Deep add of two JSON values: numbers add, arrays element by element, objects key by key
        // (keys of either side); null or a missing side yields the other; anything else takes b.
        await queryRunner.query(`CREATE FUNCTION rollup_add(a jsonb, b jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF a IS NULL OR jsonb_typeof(a) = 'null' THEN RETURN b; END IF;
  IF b IS NULL OR jsonb_typeof(b) = 'null' THEN RETURN a; END IF;
  IF jsonb_typeof(a) = 'number' AND jsonb_typeof(b) = 'number' THEN
    RETURN to_jsonb(a::numeric + b::numeric);
  ELSIF jsonb_typeof(a) = 'object' AND jsonb_typeof(b) = 'object' THEN
    RETURN COALESCE((SELECT jsonb_object_agg(k, CASE WHEN a ? k AND b ? k THEN rollup_add(a -> k, b -> k) WHEN b ? k THEN b -> k ELSE a -> k END)
                       FROM (SELECT jsonb_object_keys(a) UNION SELECT jsonb_object_keys(b)) AS keys(k)), '{}'::jsonb);
  ELSIF jsonb_typeof(a) = 'array' AND jsonb_typeof(b) = 'array' THEN
    RETURN COALESCE((SELECT jsonb_agg(CASE WHEN x IS NULL THEN y WHEN y IS NULL THEN x
                                           WHEN jsonb_typeof(x) = 'number' AND jsonb_typeof(y) = 'number' THEN to_jsonb(x::numeric + y::numeric)
                                           ELSE rollup_add(x, y) END ORDER BY i)
                       FROM jsonb_array_elements(a) WITH ORDINALITY AS p(x, i) FULL JOIN jsonb_array_elements(b) WITH ORDINALITY AS q(y, j) ON i = j), '[]'::jsonb);
  END IF;
  RETURN b;
END $$`);
        await queryRunner.query(`CREATE AGGREGATE rollup_sum(jsonb) (SFUNC = rollup_add, STYPE = jsonb)`);
        await queryRunner.query(`CREATE TABLE "prediction_rollup" ("deployment_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, "shadow" boolean NOT NULL, "window_start" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "window_seconds" integer NOT NULL, "team_id" uuid NOT NULL, "requests" bigint NOT NULL DEFAULT '0', "errors" bigint NOT NULL DEFAULT '0', "fallbacks" bigint NOT NULL DEFAULT '0', "rows" bigint NOT NULL DEFAULT '0', "unbinned" bigint NOT NULL DEFAULT '0', "labelled" bigint NOT NULL DEFAULT '0', "latency" jsonb NOT NULL DEFAULT '{}', "features" jsonb NOT NULL DEFAULT '{}', "prediction" jsonb, "quality" jsonb NOT NULL DEFAULT '{}', "label_delay" jsonb NOT NULL DEFAULT '{}', "agreement" jsonb NOT NULL DEFAULT '{}', "updated_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_prediction_rollup" PRIMARY KEY ("deployment_id", "model_version_id", "shadow", "window_start", "window_seconds"))`);
        await queryRunner.query(`CREATE INDEX "IDX_prediction_rollup_window" ON "prediction_rollup" ("deployment_id", "window_start") `);
        // Deltas are appended by writers (no read-modify-write on their path) and folded into the rows above.
        await queryRunner.query(`CREATE TABLE "prediction_rollup_delta" ("id" BIGSERIAL NOT NULL, "deployment_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, "shadow" boolean NOT NULL, "window_start" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "window_seconds" integer NOT NULL, "team_id" uuid NOT NULL, "requests" bigint NOT NULL DEFAULT '0', "errors" bigint NOT NULL DEFAULT '0', "fallbacks" bigint NOT NULL DEFAULT '0', "rows" bigint NOT NULL DEFAULT '0', "unbinned" bigint NOT NULL DEFAULT '0', "labelled" bigint NOT NULL DEFAULT '0', "latency" jsonb NOT NULL DEFAULT '{}', "features" jsonb NOT NULL DEFAULT '{}', "prediction" jsonb, "quality" jsonb NOT NULL DEFAULT '{}', "label_delay" jsonb NOT NULL DEFAULT '{}', "agreement" jsonb NOT NULL DEFAULT '{}', CONSTRAINT "PK_prediction_rollup_delta" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_prediction_rollup_delta_window" ON "prediction_rollup_delta" ("deployment_id", "window_start") `);
        // A delta lives for a second or so: compressing it would cost every write and save nothing.
        for (const column of ['latency', 'features', 'prediction', 'quality', 'label_delay', 'agreement']) {
            await queryRunner.query(`ALTER TABLE "prediction_rollup_delta" ALTER COLUMN "${column}" SET STORAGE EXTERNAL`);
        }
        await queryRunner.query(`ALTER TABLE "model_version" ADD "rollup_bins" jsonb`);
        await queryRunner.query(`DROP TABLE "prediction_window"`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" ADD VALUE IF NOT EXISTS 'QUALITY'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DELETE FROM "alert" WHERE "kind" = 'QUALITY'`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" RENAME TO "alert_kind_old"`);
        await queryRunner.query(`CREATE TYPE "public"."alert_kind" AS ENUM('DRIFT', 'PREDICTION_DRIFT', 'LATENCY', 'ERROR_RATE', 'RUN_BUDGET', 'ROLLOUT_STALLED')`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "kind" TYPE "public"."alert_kind" USING "kind"::text::"public"."alert_kind"`);
        await queryRunner.query(`DROP TYPE "public"."alert_kind_old"`);
        await queryRunner.query(`CREATE TABLE "prediction_window" ("id" BIGSERIAL NOT NULL, "deployment_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, "window_start" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "window_seconds" integer NOT NULL, "requests" integer NOT NULL, "errors" integer NOT NULL, "latency_p95_ms" double precision, "drift_score" double precision, CONSTRAINT "PK_51cb1bfc6905909dfd021b12cb6" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_894786eb93f59952d3fcb99c95" ON "prediction_window"  ("deployment_id", "model_version_id", "window_start") `);
        await queryRunner.query(`ALTER TABLE "model_version" DROP COLUMN "rollup_bins"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_prediction_rollup_delta_window"`);
        await queryRunner.query(`DROP TABLE "prediction_rollup_delta"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_prediction_rollup_window"`);
        await queryRunner.query(`DROP TABLE "prediction_rollup"`);
        await queryRunner.query(`DROP AGGREGATE rollup_sum(jsonb)`);
        await queryRunner.query(`DROP FUNCTION rollup_add(jsonb, jsonb)`);
    }
}
