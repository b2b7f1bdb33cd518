/**
 * Multi-document YAML as plain JSON, exactly what the text says.
 *
 * @module
 */
import { loadAllYaml } from "@kubernetes/client-node";

/**
 * Parses multi-document YAML into plain objects. client-node's `loadAllYaml` turns built-in
 * kinds into its model classes (renaming fields such as `x-kubernetes-list-type`); wrapping each
 * document under a key without apiVersion/kind keeps js-yaml's plain result. Documents holding
 * only comments are dropped.
 */
export function parseYaml(text: string): unknown[] {
  return text.split(/^---[ \t]*$/m)
    .filter((doc) => /^[^#\s]/m.test(doc))
    .map((doc) => {
      const wrapped = "doc:\n" + doc.split("\n").map((line) => `  ${line}`).join("\n");
      const [parsed] = loadAllYaml(wrapped) as [{ doc: unknown }];
      return parsed.doc;
    });
}
