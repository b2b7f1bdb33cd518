/**
 * Starts a local control plane (etcd + kube-apiserver, and kube-controller-manager with
 * `--controllers`) and keeps it until Ctrl-C:
 *
 * ```sh
 * deno run -P=dev tools/controlplane.ts [--verbose] [--controllers=manifests|NAME,...]
 * ```
 *
 * It prints the server URL and the admin kubeconfig; Ctrl-C (or SIGTERM) stops everything and
 * removes its temp dir. tests/support/control_plane.ts also runs it as the supervisor of the
 * instance shared by a `deno test` process (`--state-file`, `--watch-pid`, `--bin-dir`).
 *
 * Needs the `dev` permission set (run, read, write, net to 127.0.0.1, env).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  type ControlPlane,
  MANIFEST_CONTROLLERS,
  type SharedControlPlaneState,
  startControlPlane,
} from "../tests/support/control_plane.ts";

const usage = `usage: deno run -P=dev tools/controlplane.ts [--verbose] [--controllers=LIST]
  --verbose           print every line of etcd, kube-apiserver and kube-controller-manager
  --controllers=LIST  also run kube-controller-manager with these controllers: "manifests" (what
                      the shipped manifests need: ${MANIFEST_CONTROLLERS.join(", ")})
                      or kube-controller-manager's own names, comma-separated
internal (used by sharedControlPlane()):
  --bin-dir=DIR       folder holding etcd and kube-apiserver (default: build.sh)
  --state-file=FILE   write the instance as JSON to FILE, remove FILE's folder at exit
  --watch-pid=PID     stop once process PID has exited`;

/** Whether process `pid` still exists (Linux: /proc; elsewhere: a harmless, ignored signal). */
function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (err) {
    if (Deno.build.os === "linux") return !(err instanceof Deno.errors.NotFound);
  }
  try {
    Deno.kill(pid, "SIGURG");
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        "verbose": { type: "boolean", default: false },
        "controllers": { type: "string" },
        "bin-dir": { type: "string" },
        "state-file": { type: "string" },
        "watch-pid": { type: "string" },
        "help": { type: "boolean", default: false },
      },
    }));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : err}\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const watchPid = values["watch-pid"] === undefined ? undefined : Number(values["watch-pid"]);
  if (watchPid !== undefined && !(Number.isInteger(watchPid) && watchPid > 0)) {
    console.error(`Cannot watch --watch-pid=${values["watch-pid"]}: not a process id`);
    return 2;
  }
  const listed = values.controllers;
  if (listed !== undefined && !/^[a-z-]+(,[a-z-]+)*$/.test(listed)) {
    console.error(`Cannot run --controllers=${listed}: not "manifests" or a comma-separated list`);
    return 2;
  }
  const controllers = listed === "manifests" ? MANIFEST_CONTROLLERS : listed?.split(",");
  const stateFile = values["state-file"];
  const stateDir = stateFile?.replace(/\/[^/]*$/, "");

  const stopRequested = Promise.withResolvers<string>();
  const onSignal = (name: string) => () => stopRequested.resolve(name);
  const sigint = onSignal("SIGINT");
  const sigterm = onSignal("SIGTERM");
  Deno.addSignalListener("SIGINT", sigint);
  Deno.addSignalListener("SIGTERM", sigterm);

  let cp: ControlPlane;
  try {
    cp = await startControlPlane({
      binDir: values["bin-dir"],
      controllers,
      handleSignals: false,
      // Without --verbose only the timing lines: process output lines start with "[name]".
      log: (line) => {
        if (values.verbose || !line.startsWith("[")) console.error(line);
      },
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    console.error(message);
    if (stateDir !== undefined) await Deno.writeTextFile(`${stateDir}/error.txt`, message);
    return 1;
  }
  let watcher: ReturnType<typeof setInterval> | undefined;
  try {
    if (stateFile !== undefined) {
      const state: SharedControlPlaneState = {
        server: cp.server,
        host: cp.host,
        port: cp.port,
        caFile: cp.caFile,
        adminKubeconfig: cp.adminKubeconfig,
        dir: cp.dir,
        supervisorPid: Deno.pid,
      };
      await Deno.writeTextFile(`${stateFile}.tmp`, JSON.stringify(state));
      await Deno.rename(`${stateFile}.tmp`, stateFile);
    } else {
      console.log(
        [
          `server:           ${cp.server}`,
          `CA file:          ${cp.caFile}`,
          `admin kubeconfig: ${cp.adminKubeconfig}`,
          `logs:             ${cp.dir}/logs/`,
          "",
          `  export KUBECONFIG=${cp.adminKubeconfig}`,
          "  kubectl get --raw /readyz",
          "",
          "Ctrl-C stops it and removes its temp dir.",
        ].join("\n"),
      );
    }
    if (watchPid !== undefined) {
      watcher = setInterval(() => {
        if (!alive(watchPid)) stopRequested.resolve(`process ${watchPid} exited`);
      }, 250);
    }
    const reason = await stopRequested.promise;
    console.error(`stopping control plane ${cp.server}: ${reason}`);
  } finally {
    clearInterval(watcher);
    await cp.stop();
    if (stateDir !== undefined) await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    Deno.removeSignalListener("SIGINT", sigint);
    Deno.removeSignalListener("SIGTERM", sigterm);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
