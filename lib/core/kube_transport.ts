/**
 * KUBE_TRANSPORT: how the Kubernetes client's requests travel, read by the sidecar's
 * configuration (config.ts) and by the operator commands (cli/operate_args.ts).
 *
 * @module
 */

/**
 * How the Kubernetes client's requests and watches travel: `deno`, Deno's own `fetch` (the
 * default); `undici`, client-node's own HTTP stack, kept selectable for the benchmark's
 * before-and-after and for kubeconfigs Deno's client cannot serve (insecure-skip-tls-verify,
 * tls-server-name). See lib/kube/deno_transport.ts.
 */
export type KubeTransport = "deno" | "undici";

/** The values of KUBE_TRANSPORT. */
export const KUBE_TRANSPORTS: readonly KubeTransport[] = ["deno", "undici"];

/**
 * KUBE_TRANSPORT's value, or a problem naming the variable, its value and the rule (the operator
 * commands read it from the same environment).
 */
export function parseKubeTransport(
  raw: string | undefined,
): { transport: KubeTransport } | { problem: string } {
  const value = (raw ?? "").trim().toLowerCase();
  if (value === "") return { transport: "deno" };
  if ((KUBE_TRANSPORTS as readonly string[]).includes(value)) {
    return { transport: value as KubeTransport };
  }
  return {
    problem: `KUBE_TRANSPORT=${JSON.stringify(raw)}: must be one of ${KUBE_TRANSPORTS.join(", ")}`,
  };
}
