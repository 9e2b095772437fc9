/**
 * A collection's items in an embedded LanceDB table (`items.lance/`, table `items`): row id,
 * embedding, image path and label. The same folder opens from Python (`lancedb.connect`).
 */
import * as lancedb from '@lancedb/lancedb';
import type { Matrix } from '../matrix.js';

export const TABLE = 'items';

/** Rows for `m` (`path` and `label` '' when unknown) with ids from firstId, and the paths/labels given (aligned with the rows). */
export function itemRows(m: Matrix, firstId: number, paths?: readonly string[], labels?: readonly string[]): Record<string, unknown>[] {
  return Array.from({ length: m.rows }, (_, i) => ({
    id: firstId + i,
    vector: Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)),
    path: paths?.[i] ?? '',
    label: labels?.[i] ?? '',
  }));
}

export class ItemStore {
  private constructor(private readonly db: lancedb.Connection, private table: lancedb.Table | null) {}

  static async open(dir: string): Promise<ItemStore> {
    const db = await lancedb.connect(dir);
    const table = (await db.tableNames()).includes(TABLE) ? await db.openTable(TABLE) : null;
    return new ItemStore(db, table);
  }

  /** Appends rows (creating the table with the first ones). */
  async append(rows: Record<string, unknown>[]): Promise<void> {
    if (rows.length === 0) return;
    if (this.table) await this.table.add(rows);
    else this.table = await this.db.createTable(TABLE, rows);
  }

  /** Every item, in id order: embeddings as one matrix, and their paths and labels. */
  async all(dimension: number): Promise<{ vectors: Matrix; paths: string[]; labels: string[] }> {
    const rows = this.table ? ((await this.table.query().select(['id', 'vector', 'path', 'label']).toArray()) as { id: number; vector: { toArray(): Float32Array }; path: string; label: string }[]) : [];
    rows.sort((a, b) => a.id - b.id);
    const data = new Float32Array(rows.length * dimension);
    rows.forEach((r, i) => data.set(r.vector.toArray(), i * dimension));
    return { vectors: { rows: rows.length, cols: dimension, data }, paths: rows.map((r) => r.path), labels: rows.map((r) => r.label) };
  }

  close(): void {
    this.db.close();
  }
}
