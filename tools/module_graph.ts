/**
 * The local module graph of a TypeScript file, read as text: the file and every module it
 * imports by a relative path, transitively (static `import`/`export ... from` and `import "./x"`,
 * type-only imports included). npm:, jsr: and bare specifiers are not followed. Used by the dummy
 * example (which modules to ship) and by the test sets (which tests reach the control plane).
 *
 * @module
 */

import { relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// Static `import ... from "./x"`, `export ... from "./x"` and `import "./x"` of relative paths.
const LOCAL_IMPORT =
  /(?:^|\n)\s*(?:import|export)\s+(?:[^"';]*?\sfrom\s*)?["'](\.{1,2}\/[^"']+)["']/g;

/**
 * `entry` and every local module it imports, transitively, as paths relative to `root`, sorted.
 * Throws if one of them imports a file outside `root`. Needs read access to `root`.
 */
export async function localModuleGraph(entry: string, root: string): Promise<string[]> {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const path = pending.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const url = pathToFileURL(`${root}/${path}`);
    const text = await Deno.readTextFile(url);
    for (const match of text.matchAll(LOCAL_IMPORT)) {
      const rel = relative(root, fileURLToPath(new URL(match[1]!, url)));
      if (rel.startsWith("..")) {
        throw new Error(`Cannot follow ${path}'s imports: it imports ${match[1]}, outside ${root}`);
      }
      pending.push(rel);
    }
  }
  return [...seen].sort();
}
