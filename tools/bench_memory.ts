/**
 * The benchmark's memory figures: each sidecar in a memory cgroup with the shipped StatefulSet's
 * `limits.memory` for the forge-manager container (tools/memory_cgroup.ts), read at the end of
 * each phase (start-up, planned handovers, steady state), and the table the shipped resources
 * rest on.
 *
 * @module
 */

import { parseYaml } from "../tests/support/yaml.ts";
import { MemoryCgroup, memoryQuantityBytes, type MemoryReading } from "./memory_cgroup.ts";

/** The phases whose peaks are read apart. */
export type MemoryPhase = "start-up" | "handovers" | "steady";

/**
 * The sidecar's memory limit: `override` (a quantity, or `none` for no cgroup: 0 bytes), else the
 * shipped limit of the forge-manager container in manifests/statefulset.yaml.
 */
export async function sidecarLimit(
  override?: string,
  container = "forge-manager",
): Promise<{ quantity: string; bytes: number; requests: string }> {
  if (override === "none") return { quantity: "none", bytes: 0, requests: "(none)" };
  if (override !== undefined) {
    return { quantity: override, bytes: memoryQuantityBytes(override), requests: "(not shipped)" };
  }
  const path = new URL("../manifests/statefulset.yaml", import.meta.url);
  const [sts] = parseYaml(await Deno.readTextFile(path)) as [
    {
      spec: {
        template: {
          spec: {
            initContainers?: Container[];
            containers: Container[];
          };
        };
      };
    },
  ];
  const pod = sts.spec.template.spec;
  const found = [...(pod.initContainers ?? []), ...pod.containers].find((c) =>
    c.name === container
  );
  const quantity = found?.resources?.limits?.memory;
  if (quantity === undefined) {
    throw new Error(`Cannot find limits.memory of container ${container} in ${path.pathname}`);
  }
  return {
    quantity,
    bytes: memoryQuantityBytes(quantity),
    requests: found?.resources?.requests?.memory ?? "(none)",
  };
}

interface Container {
  name: string;
  resources?: { limits?: { memory?: string }; requests?: { memory?: string } };
}

/** A memory cgroup for one sidecar, or undefined (and said once) where none can be made. */
export async function sidecarCgroup(
  name: string,
  limitBytes: number,
): Promise<MemoryCgroup | undefined> {
  const cg = await MemoryCgroup.create(name, limitBytes);
  if (cg === undefined && !warned) {
    warned = true;
    console.error("cannot make memory cgroups (not root?): no memory figures under the limit");
  }
  return cg;
}
let warned = false;

const MIB = 2 ** 20;

/** The memory table: per phase, the largest peak and anonymous memory over the sidecars. */
export function memoryFigures(
  limit: { quantity: string; bytes: number; requests: string },
  measured: boolean,
  phases: Record<MemoryPhase, Record<string, MemoryReading>>,
  oomKills: number,
  what = "sidecar",
): string {
  if (!measured) return `\n${what} memory under its limit: not measured (no memory cgroup)`;
  const lines = [
    `\n${what} memory under limits.memory ${limit.quantity} (requests ${limit.requests}), ` +
    `each ${what} in a cgroup of its own from its start:`,
    "phase       peak MiB (max)   anonymous MiB (max)   pods",
  ];
  let worst = 0;
  for (const [phase, byPod] of Object.entries(phases)) {
    const readings = Object.values(byPod);
    if (readings.length === 0) continue;
    const peak = Math.max(...readings.map((r) => r.peak)) / MIB;
    const anon = Math.max(...readings.map((r) => r.anon)) / MIB;
    worst = Math.max(worst, peak);
    lines.push(
      `${phase.padEnd(11)} ${peak.toFixed(1).padStart(14)}   ${anon.toFixed(1).padStart(19)}   ${
        Object.entries(byPod).map(([pod, r]) =>
          `${pod} ${(r.peak / MIB).toFixed(0)}/${(r.anon / MIB).toFixed(0)}`
        ).join(", ")
      }`,
    );
  }
  const headroom = limit.bytes / MIB - worst;
  lines.push(
    `OOM kills: ${oomKills} (target 0 ${oomKills === 0 ? "ok" : "MISSED"}); ` +
      `headroom above the largest peak: ${headroom.toFixed(1)} MiB ` +
      `(${(100 * headroom / (limit.bytes / MIB)).toFixed(0)} % of the limit; target >= 25 % ${
        headroom >= 0.25 * limit.bytes / MIB ? "ok" : "MISSED"
      })`,
  );
  return lines.join("\n");
}
