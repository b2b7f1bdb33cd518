/**
 * A memory cgroup of our own, as a kubelet makes one for a container with `limits.memory`: a child
 * of this process's own memory cgroup (cgroup v1 `memory` controller or cgroup v2, whichever the
 * machine has), with a hard limit. A process joins it when it starts (so its start-up is charged
 * too); the kernel OOM-kills inside it when the limit cannot be met, as it would in a pod.
 *
 * Read: the current usage, the peak since the last {@linkcode MemoryCgroup.resetPeak} (v1
 * `memory.max_usage_in_bytes`, v2 `memory.peak`), the anonymous memory (v1 `total_rss`, v2 `anon`:
 * what no reclaim can free, the part a limit must hold) and OOM kills (v1 `oom_kill` in
 * `memory.oom_control`, v2 `oom_kill` in `memory.events`).
 *
 * Needs root (writes under /sys/fs/cgroup).
 *
 * @module
 */

/** One reading. Bytes. */
export interface MemoryReading {
  usage: number;
  peak: number;
  anon: number;
  oomKills: number;
}

/** A child memory cgroup with a limit. Remove it with {@linkcode MemoryCgroup.remove}. */
export class MemoryCgroup {
  private constructor(
    readonly path: string,
    readonly version: 1 | 2,
    readonly limitBytes: number,
  ) {}

  /** Creates `name` under this process's memory cgroup with `limitBytes`; undefined if refused. */
  static async create(name: string, limitBytes: number): Promise<MemoryCgroup | undefined> {
    const parent = await ownMemoryCgroup();
    if (parent === undefined) return undefined;
    const path = `${parent.path}/${name}`;
    try {
      await Deno.mkdir(path);
      if (parent.version === 1) {
        await Deno.writeTextFile(`${path}/memory.limit_in_bytes`, String(limitBytes));
        // No swap for it, as a kubelet sets memsw (where the kernel accounts swap).
        await Deno.writeTextFile(`${path}/memory.memsw.limit_in_bytes`, String(limitBytes))
          .catch(() => {});
      } else {
        await Deno.writeTextFile(`${path}/memory.max`, String(limitBytes));
        await Deno.writeTextFile(`${path}/memory.swap.max`, "0").catch(() => {});
      }
      return new MemoryCgroup(path, parent.version, limitBytes);
    } catch {
      await Deno.remove(path).catch(() => {});
      return undefined;
    }
  }

  /** The file a process writes its PID to, to join (`echo $$ > procsFile` before exec). */
  get procsFile(): string {
    return `${this.path}/cgroup.procs`;
  }

  /** The current figures. */
  async read(): Promise<MemoryReading> {
    const num = async (file: string) => Number((await Deno.readTextFile(file)).trim());
    const field = async (file: string, name: string) => {
      const m = new RegExp(`^${name} (\\d+)$`, "m").exec(await Deno.readTextFile(file));
      return m === null ? 0 : Number(m[1]);
    };
    if (this.version === 1) {
      return {
        usage: await num(`${this.path}/memory.usage_in_bytes`),
        peak: await num(`${this.path}/memory.max_usage_in_bytes`),
        anon: await field(`${this.path}/memory.stat`, "total_rss"),
        oomKills: await field(`${this.path}/memory.oom_control`, "oom_kill"),
      };
    }
    return {
      usage: await num(`${this.path}/memory.current`),
      peak: await num(`${this.path}/memory.peak`).catch(() => NaN),
      anon: await field(`${this.path}/memory.stat`, "anon"),
      oomKills: await field(`${this.path}/memory.events`, "oom_kill"),
    };
  }

  /** Starts a new peak from the current usage (v1; v2 kernels from 6.12). */
  async resetPeak(): Promise<void> {
    const file = this.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak";
    await Deno.writeTextFile(`${this.path}/${file}`, "0").catch(() => {});
  }

  /**
   * Removes the cgroup. A process killed just before may not have left it yet (the kernel
   * refuses with EBUSY meanwhile), so this tries again for up to two seconds.
   */
  async remove(): Promise<void> {
    for (let attempt = 0; attempt < 40; attempt++) {
      try {
        await Deno.remove(this.path);
        return;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

/** This process's memory cgroup folder, and the version of its hierarchy. */
async function ownMemoryCgroup(): Promise<{ path: string; version: 1 | 2 } | undefined> {
  const lines = (await Deno.readTextFile("/proc/self/cgroup")).trim().split("\n");
  for (const line of lines) {
    const [, controllers, path] = line.split(":", 3) as [string, string, string];
    if (controllers.split(",").includes("memory")) {
      return { path: `/sys/fs/cgroup/memory${path === "/" ? "" : path}`, version: 1 };
    }
  }
  const unified = lines.find((l) => l.startsWith("0::"))?.slice(3);
  if (unified === undefined) return undefined;
  const path = `/sys/fs/cgroup${unified === "/" ? "" : unified}`;
  const controllers = await Deno.readTextFile(`${path}/cgroup.controllers`).catch(() => "");
  return controllers.split(/\s+/).includes("memory") ? { path, version: 2 } : undefined;
}

/** A Kubernetes quantity of memory (`128Mi`, `1Gi`, `500M`, `1000`) in bytes. */
export function memoryQuantityBytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity.trim());
  if (m === null) throw new Error(`Cannot read the memory quantity ${JSON.stringify(quantity)}`);
  const scale: Record<string, number> = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Math.round(Number(m[1]) * (m[2] === undefined ? 1 : scale[m[2]]!));
}
