/**
 * The setup every fault file shares: the Deno.test options (replicas outlive a step's ops), the
 * control plane (the shared one, or a private one a test may stop), and the table of figures
 * printed at the end even when a step fails. {@linkcode faultTest} gives a test its table and
 * control plane; {@linkcode faultClusterTest} also starts one {@linkcode FaultCluster} and waits
 * for its first forger.
 *
 * @module
 */

import { type ControlPlane, sharedControlPlane, startControlPlane } from "./control_plane.ts";
import { FaultCluster, type FaultClusterOptions, printTable, type Row } from "./fault_cluster.ts";

/** Deno.test options of a fault test: its processes and timers span steps. */
export const FAULT_TEST_OPTIONS = {
  sanitizeOps: false,
  sanitizeResources: false,
  sanitizeExit: false,
} as const;

/** Where a fault test runs. */
export interface FaultTestOptions {
  /** Title of the table of figures printed when the test ends. */
  table: string;
  /** A private control plane (the test stops or restarts it) instead of the shared one. */
  privateControlPlane?: boolean;
}

/** What a {@linkcode faultTest} body gets. */
export interface FaultTestContext {
  t: Deno.TestContext;
  cp: ControlPlane;
  /** The table's rows: push one per fault. */
  rows: Row[];
}

/** Registers a fault test whose table of `rows` is printed at the end, pass or fail. */
export function faultTest(
  name: string,
  options: FaultTestOptions,
  fn: (ctx: FaultTestContext) => Promise<void>,
): void {
  Deno.test(name, FAULT_TEST_OPTIONS, async (t) => {
    await using own = options.privateControlPlane
      ? await startControlPlane({ log: () => {} })
      : undefined;
    const cp = own ?? await sharedControlPlane();
    const rows: Row[] = [];
    try {
      await fn({ t, cp, rows });
    } finally {
      printTable(options.table, rows);
    }
  });
}

/**
 * Registers a fault test on one {@linkcode FaultCluster} (three replicas) in `namespace`, started
 * with the other cluster options given and forging (one forger within 30 s) before `fn` runs; its
 * rows make the table.
 */
export function faultClusterTest(
  name: string,
  options: FaultTestOptions & Omit<FaultClusterOptions, "cp">,
  fn: (c: FaultCluster, t: Deno.TestContext) => Promise<void>,
): void {
  const { table: _table, privateControlPlane: _private, ...cluster } = options;
  faultTest(name, options, async ({ t, cp, rows }) => {
    await using c = await FaultCluster.start({ cp, ...cluster });
    try {
      await c.waitSingleForger(30_000);
      await fn(c, t);
    } finally {
      rows.push(...c.rows);
    }
  });
}
