/**
 * Process figures for the benchmark and tools/footprint.ts: resident memory and CPU time from
 * /proc, CPU per thread, the load average, and a sidecar's API request count from its /metrics.
 *
 * @module
 */

/** Clock ticks per second of /proc/PID/stat (USER_HZ, 100 on Linux). */
const TICKS = 100;

/**
 * Resident memory, its anonymous part (heaps, stacks: what a memory limit must hold; the rest is
 * mapped files the kernel can drop) in bytes, and CPU time (user + system, seconds) of a process.
 */
export function procStat(pid: number): { rssBytes: number; anonBytes: number; cpuSeconds: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return {
    rssBytes: kb("VmRSS") * 1024,
    anonBytes: kb("RssAnon") * 1024,
    cpuSeconds: statTicks(`/proc/${pid}/stat`) / TICKS,
  };
}

function statTicks(path: string): number {
  const stat = Deno.readTextFileSync(path);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** CPU ticks per thread name (threads of one name summed), for where a process spends CPU. */
export function threadTicks(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const name = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).trim();
      out[name] = (out[name] ?? 0) + statTicks(`/proc/${pid}/task/${task.name}/stat`);
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

/**
 * Context switches per thread name (voluntary + involuntary, threads of one name summed): each
 * voluntary one is a sleep and a wake-up, and on this kind of VM a wake-up alone costs 0.2-0.4 ms
 * of CPU (measured with a bare timer loop, in Deno and in Node alike), so at idle they are most
 * of the CPU.
 */
export function threadSwitches(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const dir = `/proc/${pid}/task/${task.name}`;
      const name = Deno.readTextFileSync(`${dir}/comm`).trim();
      const status = Deno.readTextFileSync(`${dir}/status`);
      const switches = [...status.matchAll(/ctxt_switches:\s+(\d+)/g)]
        .reduce((sum, m) => sum + Number(m[1]), 0);
      out[name] = (out[name] ?? 0) + switches;
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

/** forge_manager_api_requests_total by operation. */
export async function apiRequestsByOperation(metricsPort: number): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split("\n")) {
    if (!line.startsWith("forge_manager_api_requests_total{")) continue;
    const operation = /operation="([^"]*)"/.exec(line)?.[1] ?? "?";
    out[operation] = (out[operation] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return out;
}

/** The sum of forge_manager_api_requests_total over all operations. */
export async function apiRequests(metricsPort: number): Promise<number> {
  return Object.values(await apiRequestsByOperation(metricsPort)).reduce((a, b) => a + b, 0);
}

/** Per-second rates of each operation between two readings, largest first, as `op 0.40`. */
export function rateBreakdown(
  before: Record<string, number>,
  after: Record<string, number>,
  seconds: number,
): string {
  return Object.entries(after)
    .map(([op, n]) => [op, (n - (before[op] ?? 0)) / seconds] as const)
    .filter(([, rate]) => rate > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([op, rate]) => `${op} ${rate.toFixed(2)}`)
    .join(", ");
}
