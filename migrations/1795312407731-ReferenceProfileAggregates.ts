import { MigrationInterface, QueryRunner } from "typeorm";

type Json = Record<string, unknown>;

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const finiteList = (v: unknown): v is number[] => Array.isArray(v) && v.every(finite);

// Written out here rather than imported: a migration must do the same thing whatever later code
// does. Keeps, per column, only counts, moments, decile bins and category counts; drops samples,
// minimum, maximum, interpolated quantiles and equal-width bin edges (each is a raw value or can be).
function aggregates(value: unknown): Json | null {
    const v = value as Json | null;
    if (!v || typeof v !== 'object' || !finite(v.count)) return null;
    if (v.type === 'categorical') {
        const f = v.frequencies;
        return f && typeof f === 'object' && !Array.isArray(f) && Object.values(f).every(finite) ? { type: 'categorical', count: v.count, frequencies: f } : null;
    }
    if (v.type !== 'numeric') return null;
    const out: Json = { type: 'numeric', count: v.count, mean: finite(v.mean) ? v.mean : null, std: finite(v.std) ? v.std : null };
    const bins = v.quantileBins as Json | undefined;
    if (bins && finiteList(bins.edges) && finiteList(bins.counts)) out.quantileBins = { edges: bins.edges, counts: bins.counts };
    return out;
}

/**
 * Reference profiles keep aggregates only (profile version 3): the sorted samples of raw training
 * values that version 2 kept per column are removed, with every other field that is or can be a
 * raw value. The model outputs' sample moves to `prediction_reference_sample`, which no API
 * returns. Profiles of older trainers keep only their columns' aggregates. Not reversible for the
 * data: `down` drops the column and leaves the profiles without raw values.
 */
export class ReferenceProfileAggregates1795312407731 implements MigrationInterface {
    name = 'ReferenceProfileAggregates1795312407731'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "model_version" ADD "prediction_reference_sample" jsonb`);
        const rows: Array<{ id: string; reference_profile: Json }> = await queryRunner.query(`SELECT id, reference_profile FROM "model_version" WHERE reference_profile IS NOT NULL FOR UPDATE`);
        for (const { id, reference_profile: p } of rows) {
            const features: Json = {};
            for (const [name, value] of Object.entries((p.features ?? {}) as Json)) {
                const kept = aggregates(value);
                if (kept) features[name] = kept;
            }
            const prediction = aggregates(p.prediction);
            const current = p.profileVersion === 2 && typeof p.inputName === 'string' && typeof p.outputName === 'string' && Array.isArray(p.inputColumns);
            const profile = current
                ? { profileVersion: 3, inputName: p.inputName, outputName: p.outputName, inputColumns: p.inputColumns, features, prediction: prediction?.type === 'numeric' && prediction.quantileBins ? prediction : null }
                : { features, prediction };
            const raw = (p.prediction as Json | null)?.sample;
            const sample = current && finiteList(raw) && raw.length > 0 ? [...raw].sort((a, b) => a - b) : null;
            await queryRunner.query(`UPDATE "model_version" SET reference_profile = $2, prediction_reference_sample = $3 WHERE id = $1`, [id, JSON.stringify(profile), sample ? JSON.stringify(sample) : null]);
        }
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "model_version" DROP COLUMN "prediction_reference_sample"`);
    }

}
