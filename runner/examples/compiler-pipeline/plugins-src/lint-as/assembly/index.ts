// A linter of the example pipeline, built with the official Extism AssemblyScript PDK: reads the
// program (JSON) and warns about names of one letter and about multiplying by zero, one warning
// a line. It only reports; the program goes on unchanged.
import { Host } from "@extism/as-pdk";

export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  Host.outputString("abort: " + (message == null ? "" : message));
  unreachable();
}

export function lint(): i32 {
  const program = Host.inputString();
  let warnings = "";
  let at = program.indexOf('"name":"');
  while (at >= 0) {
    const start = at + 8;
    const end = program.indexOf('"', start);
    if (end - start == 1) {
      warnings += "short name `" + program.substring(start, end) + "`\n";
    }
    at = program.indexOf('"name":"', end);
  }
  if (program.includes('"op":"*","rhs":"0"')) {
    warnings += "multiplication by zero\n";
  }
  Host.outputString(warnings);
  return 0;
}
