/**
 * A kubeconfig whose user authenticates through an exec credential plugin (as EKS's
 * `aws eks get-token` or GKE's `gke-gcloud-auth-plugin` do): a small script that prints an
 * ExecCredential carrying the token of a kubeconfig the control plane minted.
 *
 * @module
 */

/**
 * Writes `<dir>/token-plugin` and `<dir>/exec.kubeconfig` from the token kubeconfig `minted`;
 * returns both paths. The plugin also appends a line to `<dir>/plugin-runs` at each run.
 */
export async function execPluginKubeconfig(
  minted: string,
  dir: string,
): Promise<{ kubeconfig: string; plugin: string; runs: string }> {
  const text = await Deno.readTextFile(minted);
  const token = JSON.parse(/^\s*token: (".*")$/m.exec(text)![1]!) as string;
  const server = JSON.parse(/^\s*server: (".*")$/m.exec(text)![1]!) as string;
  const ca = JSON.parse(/^\s*certificate-authority: (".*")$/m.exec(text)![1]!) as string;
  const plugin = `${dir}/token-plugin`;
  const runs = `${dir}/plugin-runs`;
  const credential = JSON.stringify({
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: { token },
  });
  await Deno.writeTextFile(
    plugin,
    `#!/bin/sh\necho run >> ${JSON.stringify(runs)}\nprintf '%s' '${credential}'\n`,
    { mode: 0o755 },
  );
  const q = JSON.stringify;
  const kubeconfig = `${dir}/exec.kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "  - name: c",
      "    cluster:",
      `      server: ${q(server)}`,
      `      certificate-authority: ${q(ca)}`,
      "users:",
      "  - name: u",
      "    user:",
      "      exec:",
      "        apiVersion: client.authentication.k8s.io/v1",
      `        command: ${q(plugin)}`,
      "        interactiveMode: Never",
      "contexts:",
      "  - name: c",
      "    context: { cluster: c, user: u }",
      "current-context: c",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  return { kubeconfig, plugin, runs };
}
