/**
 * Client certificates for a test control plane: a CA that kube-apiserver trusts for client
 * authentication (`--client-ca-file`) and certificates it signs, whose subject names the user
 * (CN) and its groups (O), as kubeadm's admin.conf has. Made with the `openssl` command.
 *
 * Needs run access to `openssl` and write access to the folder.
 *
 * @module
 */

/** Whether the `openssl` command can be run here. */
export async function opensslAvailable(): Promise<boolean> {
  try {
    const out = await new Deno.Command("openssl", { args: ["version"], stdout: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `Cannot make a client certificate: openssl ${args[0]} failed: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

/** Writes `<dir>/client-ca.crt` and its key (mode 0600); returns the certificate's path. */
export async function makeClientCa(dir: string): Promise<string> {
  const key = `${dir}/client-ca.key`;
  const crt = `${dir}/client-ca.crt`;
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  await Deno.chmod(key, 0o600);
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    key,
    "-subj",
    "/CN=forge-manager-test-client-ca",
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    crt,
  ]);
  return crt;
}

/**
 * Writes `<dir>/<name>.crt` and `<dir>/<name>.key` (mode 0600): a client certificate for `user`
 * in `groups`, signed by the CA of {@linkcode makeClientCa} in `dir`.
 */
export async function makeClientCertificate(
  dir: string,
  opts: { name: string; user: string; groups: readonly string[] },
): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = `${dir}/${opts.name}.key`;
  const csr = `${dir}/${opts.name}.csr`;
  const certFile = `${dir}/${opts.name}.crt`;
  const ext = `${dir}/${opts.name}.ext`;
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", keyFile]);
  await Deno.chmod(keyFile, 0o600);
  const subject = [...opts.groups.map((g) => `/O=${g}`), `/CN=${opts.user}`].join("");
  await openssl(["req", "-new", "-key", keyFile, "-subj", subject, "-out", csr]);
  await Deno.writeTextFile(
    ext,
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    `${dir}/client-ca.crt`,
    "-CAkey",
    `${dir}/client-ca.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    ext,
    "-out",
    certFile,
  ]);
  await Deno.remove(csr);
  await Deno.remove(ext);
  return { certFile, keyFile };
}
