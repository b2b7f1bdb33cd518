import assert from "node:assert/strict";
import { parseNodeMetrics, readNodeMetrics } from "../../lib/node/node_metrics.ts";

/** A block producer's endpoint under the legacy tracing system (abridged, real series names). */
const LEGACY = `# TYPE cardano_node_metrics_slotNum_int gauge
cardano_node_metrics_slotNum_int 112500909
cardano_node_metrics_forging_enabled 1
cardano_node_metrics_currentKESPeriod_int 868
cardano_node_metrics_remainingKESPeriods_int 55
cardano_node_metrics_operationalCertificateStartKESPeriod_int 861
cardano_node_metrics_operationalCertificateExpiryKESPeriod_int 923
cardano_node_metrics_Forge_forge_about_to_lead_int 412331
cardano_node_metrics_Forge_node_is_leader_int 82
cardano_node_metrics_Forge_forged_int 82
cardano_node_metrics_Forge_adopted_int 81
cardano_node_metrics_Forge_could_not_forge_int 1
cardano_node_metrics_blockNum_int 8617641
rts_gc_num_gcs 11269899
`;

/** The same under the new tracing system: counters end in _counter. */
const NEW_TRACING = `cardano_node_metrics_slotNum_int 112500910
cardano_node_metrics_forging_enabled_int 0
cardano_node_metrics_Forge_about_to_lead_counter 7
cardano_node_metrics_Forge_node_is_leader_counter 1
cardano_node_metrics_Forge_forged_counter 1
`;

Deno.test("reads the forging series of the legacy tracing system", () => {
  assert.deepEqual(parseNodeMetrics(LEGACY, 5), {
    atMs: 5,
    slotNum: 112500909,
    forgingEnabled: 1,
    currentKESPeriod: 868,
    remainingKESPeriods: 55,
    opcertStartKESPeriod: 861,
    opcertExpiryKESPeriod: 923,
    aboutToLead: 412331,
    nodeIsLeader: 82,
    forged: 82,
    adopted: 81,
    couldNotForge: 1,
  });
});

Deno.test("reads the _counter spellings of the new tracing system", () => {
  assert.deepEqual(parseNodeMetrics(NEW_TRACING, 0), {
    atMs: 0,
    slotNum: 112500910,
    forgingEnabled: 0,
    aboutToLead: 7,
    nodeIsLeader: 1,
    forged: 1,
  });
});

Deno.test("skips comments, other series, labels and malformed lines", () => {
  const text = [
    "# HELP cardano_node_metrics_Forge_forged_int forged",
    'cardano_node_metrics_Forge_forged_int{alias="bp"} 3 1700000000000',
    "cardano_node_metrics_Forge_forged_intx 9",
    "cardano_node_metrics_slotNum_int notanumber",
    "cardano_node_metrics_currentKESPeriod_int",
    "garbage line here",
    "",
  ].join("\n");
  assert.deepEqual(parseNodeMetrics(text, 1), { atMs: 1, forged: 3 });
  assert.deepEqual(parseNodeMetrics("", 2), { atMs: 2 });
});

Deno.test("the fetch adapter returns a sample, or says why there is none", async () => {
  const url = "http://127.0.0.1:12798/metrics";
  const answer = (response: Response | Error) =>
    ((input: string | URL | Request) => {
      assert.equal(String(input), url);
      return response instanceof Error ? Promise.reject(response) : Promise.resolve(response);
    }) as typeof fetch;
  const ok = await readNodeMetrics(url, { fetch: answer(new Response(LEGACY)), now: () => 42 });
  assert.ok(ok.ok);
  assert.equal(ok.sample.atMs, 42);
  assert.equal(ok.sample.forged, 82);
  const refused = await readNodeMetrics(url, {
    fetch: answer(new TypeError("error sending request: Connection refused")),
  });
  assert.deepEqual(refused, {
    ok: false,
    error: `Cannot read the node's metrics at ${url}: TypeError: error sending request: ` +
      "Connection refused",
  });
  const failing = await readNodeMetrics(url, {
    fetch: answer(new Response("no", { status: 503 })),
  });
  assert.deepEqual(failing, {
    ok: false,
    error: `Cannot read the node's metrics at ${url}: HTTP 503`,
  });
});

Deno.test("the fetch adapter gives up on an endpoint that never answers", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn); // accept, never answer
  })();
  try {
    const { port } = listener.addr as Deno.NetAddr;
    const read = await readNodeMetrics(`http://127.0.0.1:${port}/metrics`, { timeoutMs: 100 });
    assert.deepEqual(read, {
      ok: false,
      error: `Cannot read the node's metrics at http://127.0.0.1:${port}/metrics: no answer ` +
        "within 100 ms",
    });
  } finally {
    listener.close();
    for (const conn of conns) conn.close();
    await accepting.catch(() => {});
  }
});
