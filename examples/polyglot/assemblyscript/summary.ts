// The polyglot workflow's last step, in AssemblyScript: it reduces the measured lines to one
// summary. Build with
//
//   node ../../../sdk/assemblyscript/node_modules/.bin/asc summary.ts -o poly-assemblyscript.wasm \
//       -O3 --noAssert --exportStart _initialize --use abort=../../../sdk/assemblyscript/assembly/index/abort
import { JsonKind, JsonValue, bytesTask, fail, jsonQuote, jsonTask } from "../../../sdk/assemblyscript/assembly/index";
export { lumen_abi_v1, lumen_alloc, lumen_manifest, lumen_call } from "../../../sdk/assemblyscript/assembly/index";

// hex8 writes h as eight lower-case hex digits.
function hex8(h: u32): string {
  const s = h.toString(16);
  return "00000000".substring(s.length) + s;
}

// summary: {"lines": [the original lines], "stats": [measure's output for each, in order]} ->
// {"lines":n,"words":w,"bytes":b,"longest":"the original line with the most words (the first of
// a tie)","checksum":"8 hex digits"}. The checksum folds the lines' FNV-1a hashes in order, the
// way FNV-1a folds bytes, so it changes when any line or their order does.
jsonTask("summary", (input: string): string | null => {
  const v = JsonValue.parse(input);
  const lines = v != null ? v.get("lines") : null;
  const stats = v != null ? v.get("stats") : null;
  if (lines == null || stats == null || lines.kind != JsonKind.ARRAY || stats.kind != JsonKind.ARRAY ||
      lines.items.length != stats.items.length) {
    fail("E_INPUT", 'want {"lines": [string], "stats": [measure output]} of the same length');
    return null;
  }
  let words: i64 = 0;
  let bytes: i64 = 0;
  let most: i64 = -1;
  let longest = "";
  let sum: u32 = 2166136261;
  for (let i = 0; i < stats.items.length; i++) {
    const s = stats.items[i];
    if (s.getInt("index", -1) != i) {
      fail("E_ORDER", "stats[" + i.toString() + "] is not the measure of line " + i.toString());
      return null;
    }
    const w = s.getInt("words");
    words += w;
    bytes += s.getInt("bytes");
    if (w > most) {
      most = w;
      longest = lines.items[i].str;
    }
    sum = (sum ^ <u32>s.getInt("fnv1a")) * 16777619;
  }
  return '{"lines":' + stats.items.length.toString() + ',"words":' + words.toString() + ',"bytes":' +
    bytes.toString() + ',"longest":' + jsonQuote(longest) + ',"checksum":"' + hex8(sum) + '"}';
});

// echo returns its input: the no-op task the SDK benchmark calls.
bytesTask("echo", (b: Uint8Array): Uint8Array | null => b);
