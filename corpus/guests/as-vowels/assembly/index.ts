// A plugin built with the official Extism AssemblyScript PDK. `count_vowels` gives the same
// answer as the Rust guest's export of that name; `visits` keeps a counter in a plugin var.
import { Host, Var } from "@extism/as-pdk";

export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  Host.outputString("abort: " + (message == null ? "" : message));
  unreachable();
}

export function count_vowels(): i32 {
  const text = Host.inputString();
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if ("aeiouAEIOU".includes(c)) count += 1;
  }
  Host.outputString('{"count":' + count.toString() + "}");
  return 0;
}

export function visits(): i32 {
  const previous = Var.getString("visits");
  const next = (previous == null ? 0 : I32.parseInt(previous)) + 1;
  Var.set("visits", Uint8Array.wrap(String.UTF8.encode(next.toString())));
  Host.outputString(next.toString());
  return 0;
}
