/**
 * lib/kube/lease_store.ts against the real API server: every write is conditional on the version
 * read, a lost race is a LeaseConflict, releases carry (or not) the clean-handover marker, and
 * the watch reports changes.
 */

import assert from "node:assert/strict";
import { CoordinationV1Api } from "@kubernetes/client-node";
import type { FencePending, LeaseRecord, Observation } from "../../lib/kube/lease_store.ts";
import { loadKubeConfig } from "../../lib/kube/kube_client.ts";
import {
  GUARD_BOUND_ANNOTATION,
  HANDOVER_TO_ANNOTATION,
  HOLDER_POD_UID_ANNOTATION,
  KubeLeaseStore,
  LeaseConflict,
} from "../../lib/kube/lease_store.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { sleep, waitUntil } from "../support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "lease-store-test";

/** A claim's arguments as every test here writes them: a 15 s Lease, a 5 s timeout. */
function claimOf(
  record: LeaseRecord | undefined,
  identity: string,
  podUid: string,
  extra: { fencePending?: FencePending; guardBoundMs?: number } = {},
) {
  return { record, identity, podUid, durationSeconds: 15, timeoutMs: 5000, ...extra };
}

async function store(name: string) {
  const cp = await sharedControlPlane();
  await cp.ensureNamespace(NS);
  const kc = loadKubeConfig(cp.adminKubeconfig);
  const counted: string[] = [];
  const leases = new KubeLeaseStore({ kc, namespace: NS, name, count: (op) => counted.push(op) });
  return { kc, leases, counted };
}

Deno.test(
  "create, renew, and a stale replace that comes back as a LeaseConflict",
  opts,
  async () => {
    const { leases, counted } = await store("cycle");
    assert.deepEqual(await leases.read(5000), { kind: "absent" });
    const created = await leases.claim(claimOf(undefined, "a-0_1", "uid-a"));
    assert.equal(created.holder, "a-0_1");
    assert.equal(created.durationMs, 15_000);
    assert.equal(created.holderPodUid, "uid-a");
    // A second create loses.
    await assert.rejects(
      leases.claim(claimOf(undefined, "b-0_2", "")),
      LeaseConflict,
    );
    const renewed = await leases.claim(claimOf(created, "a-0_1", "uid-a"));
    assert.notEqual(renewed.resourceVersion, created.resourceVersion);
    assert.equal(renewed.transitions, created.transitions);
    // Acquiring with the stale version loses the race; nothing is written.
    await assert.rejects(
      leases.claim(claimOf(created, "b-0_2", "")),
      LeaseConflict,
    );
    const now = await leases.read(5000);
    assert.equal(now.kind === "present" && now.record.holder, "a-0_1");
    assert.deepEqual(counted, ["get", "create", "create", "renew", "acquire", "get"]);
  },
);

Deno.test(
  "a clean release is marked; an unclean one is not, and keeps the holder's pod UID",
  opts,
  async () => {
    const { leases, kc } = await store("release");
    const mine = await leases.claim(claimOf(undefined, "a-0_1", "uid-a"));
    const clean = await leases.release(mine, "a-0_1", true, 5000);
    assert.equal(clean.holder, "");
    assert.equal(clean.releasedBy, "a-0_1");
    assert.equal(clean.durationMs, 1000);
    const taken = await leases.claim(claimOf(clean, "b-0_2", "uid-b"));
    assert.equal(taken.releasedBy, undefined, "a new holder clears the marker");
    assert.equal(taken.transitions, clean.transitions + 1);
    const unclean = await leases.release(taken, "b-0_2", false, 5000);
    assert.equal(unclean.holder, "");
    assert.equal(unclean.releasedBy, undefined);
    const raw = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({
      name: "release",
      namespace: NS,
    });
    assert.equal(raw.metadata?.annotations?.[HOLDER_POD_UID_ANNOTATION], "uid-b");
    // renewTime is written with microseconds, as the API requires.
    assert.match(String(raw.spec?.renewTime), /\.\d{6}Z$/);
  },
);

Deno.test(
  "a fence obligation is written with a claim, kept by a release that carries it, and removed by a claim without it",
  opts,
  async () => {
    const { leases } = await store("pending");
    const owed = { holder: "old-0_9", podUid: "uid-old", writtenAt: 1_765_000_000_000 };
    const mine = await leases.claim(claimOf(undefined, "a-0_1", "uid-a", { fencePending: owed }));
    assert.deepEqual(mine.fencePending, owed);
    const read = await leases.read(5000);
    assert.deepEqual(read.kind === "present" && read.record.fencePending, owed);
    const released = await leases.release(mine, "a-0_1", true, 5000, { fencePending: owed });
    assert.deepEqual(released.fencePending, owed, "the successor must still prove old-0_9");
    const taken = await leases.claim(claimOf(released, "b-0_2", "uid-b"));
    assert.equal(taken.fencePending, undefined, "a proven (or owed-nothing) claim clears it");
  },
);

Deno.test("the watch reports a change made by someone else, and a deletion", opts, async () => {
  const { leases, kc } = await store("watched");
  const seen: Observation[] = [];
  const abort = new AbortController();
  leases.watch((o) => seen.push(o), abort.signal);
  try {
    await sleep(500);
    const other = await store("watched");
    await other.leases.claim(claimOf(undefined, "c-0_3", ""));
    await kc.makeApiClient(CoordinationV1Api).deleteNamespacedLease({
      name: "watched",
      namespace: NS,
    });
    await waitUntil("the watch to report the Lease absent", () => {
      return seen.some((o) => o.kind === "absent");
    }, 10_000);
  } finally {
    abort.abort();
  }
  assert.ok(seen.some((o) => o.kind === "present" && o.record.holder === "c-0_3"));
  assert.ok(seen.some((o) => o.kind === "absent"));
});

Deno.test(
  "a handover release names its target; the next holder and an unclean release clear it",
  opts,
  async () => {
    const { leases, kc } = await store("handover");
    const mine = await leases.claim(claimOf(undefined, "a-0_1", "uid-a"));
    const handed = await leases.release(mine, "a-0_1", true, 5000, { handoverTo: "b-0" });
    assert.equal(handed.releasedBy, "a-0_1");
    assert.equal(handed.handoverTo, "b-0");
    const raw = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({
      name: "handover",
      namespace: NS,
    });
    assert.equal(raw.metadata?.annotations?.[HANDOVER_TO_ANNOTATION], "b-0");
    const taken = await leases.claim(claimOf(handed, "b-0_2", "uid-b"));
    assert.equal(taken.handoverTo, undefined, "a new holder clears the target");
    const unclean = await leases.release(taken, "b-0_2", false, 5000, { handoverTo: "c-0" });
    assert.equal(unclean.handoverTo, undefined, "an unclean release named a target");
  },
);

Deno.test(
  "a guarded holder's bound travels on its claims and an unclean release, and goes with a clean one",
  opts,
  async () => {
    const { kc, leases } = await store("guard-bound");
    const api = kc.makeApiClient(CoordinationV1Api);
    const annotation = async () =>
      (await api.readNamespacedLease({ name: "guard-bound", namespace: NS })).metadata
        ?.annotations?.[GUARD_BOUND_ANNOTATION];
    const created = await leases.claim(
      claimOf(undefined, "a-0_1", "uid-a", { guardBoundMs: 11_000 }),
    );
    assert.equal(created.guardBoundMs, 11_000);
    assert.equal(await annotation(), "11000");
    // A holder without a guard writes none: a successor then waits for the API's proof.
    const taken = await leases.claim(claimOf(created, "b-0_2", "uid-b"));
    assert.equal(taken.guardBoundMs, undefined);
    assert.equal(await annotation(), undefined);
    const guarded = await leases.claim(claimOf(taken, "b-0_2", "uid-b", { guardBoundMs: 12_500 }));
    // Unclean: the releaser is still the one to prove, with its bound.
    const unclean = await leases.release(guarded, "b-0_2", false, 5000);
    assert.equal(unclean.guardBoundMs, 12_500);
    const again = await leases.claim(claimOf(unclean, "c-0_3", "uid-c", { guardBoundMs: 11_000 }));
    const clean = await leases.release(again, "c-0_3", true, 5000);
    assert.equal(clean.guardBoundMs, undefined, "a clean release needs no proof: no bound");
    // A hand-edited bound that is not a count of milliseconds is no bound at all.
    const lease = await api.readNamespacedLease({ name: "guard-bound", namespace: NS });
    lease.metadata!.annotations = {
      ...lease.metadata!.annotations,
      [GUARD_BOUND_ANNOTATION]: "soon",
    };
    await api.replaceNamespacedLease({ name: "guard-bound", namespace: NS, body: lease });
    const read = await leases.read(5000);
    assert.equal(read.kind === "present" ? read.record.guardBoundMs : "absent", undefined);
  },
);
