// Validates rendered Kubernetes manifests offline, twice over:
//  1. against the Kubernetes API's JSON schemas (types, required fields,
//     enums, formats), with the ajv validators of the kubernetes-models
//     packages (core and apps kinds, cert-manager, Prometheus Operator);
//  2. for unknown fields (a misspelt key that the API server would drop or
//     refuse), by type-checking each object against the packages'
//     TypeScript interfaces: an object literal with a property its
//     interface lacks is a compile error.
// Usage: node WORKDIR/validate.mjs WORKDIR MANIFEST.yaml...: run from a
// copy beside `npm ci`'s node_modules (package.json here), so imports
// resolve there; prints one line per object, exits 1 on any error.
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import ts from "typescript";

const [workdir, ...files] = process.argv.slice(2);
if (!workdir || files.length === 0) {
  console.error("usage: node validate.mjs WORKDIR MANIFEST.yaml...");
  process.exit(2);
}

// apiVersion "group/version" (or "version" for the core group) -> the
// package path of its models.
function packagePath(apiVersion) {
  const [group, version] = apiVersion.includes("/")
    ? apiVersion.split("/")
    : ["", apiVersion];
  if (group === "cert-manager.io") {
    return `@kubernetes-models/cert-manager/cert-manager.io/${version}`;
  }
  if (group === "monitoring.coreos.com") {
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`;
  }
  return group === "" ? `kubernetes-models/${version}`
                      : `kubernetes-models/${group}/${version}`;
}

let errors = 0;
const objects = [];
for (const file of files) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d);
  for (const doc of docs) {
    const where = `${path.basename(file)}: ${doc.kind} ${doc.metadata?.name}`;
    if (!doc.apiVersion || !doc.kind || !doc.metadata?.name) {
      console.error(`${where}: apiVersion, kind and metadata.name are required`);
      errors++;
      continue;
    }
    const pkg = packagePath(doc.apiVersion);
    let model;
    try {
      model = (await import(pkg))[doc.kind];
    } catch (e) {
      model = undefined;
    }
    if (!model) {
      console.error(`${where}: no schema for ${doc.apiVersion} ${doc.kind}`);
      errors++;
      continue;
    }
    try {
      new model(doc).validate();
      console.log(`${where}: schema ok`);
    } catch (e) {
      console.error(`${where}: ${e.message}`);
      errors++;
    }
    objects.push({ where, pkg, doc });
  }
}

// The unknown-field check: one TypeScript file, one typed constant per
// object, compiled without emitting anything.
const lines = [];
objects.forEach(({ pkg, doc }, i) => {
  lines.push(`import type { I${doc.kind} as T${i} } from "${pkg}/${doc.kind}";`);
});
objects.forEach(({ doc }, i) => {
  lines.push(`export const o${i}: T${i} = ${JSON.stringify(doc, null, 1)};`);
});
const source = lines.join("\n");
const tsFile = path.join(path.resolve(workdir), "manifests.ts");
fs.writeFileSync(tsFile, source);
const program = ts.createProgram([tsFile], {
  noEmit: true,
  strict: true,
  skipLibCheck: true,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  target: ts.ScriptTarget.ES2022,
});
const sourceFile = program.getSourceFile(tsFile);
for (const d of ts.getPreEmitDiagnostics(program)) {
  let where = "manifests.ts";
  if (d.file === sourceFile && d.start !== undefined) {
    const offset = source.lastIndexOf("export const o", d.start);
    const index = Number(/export const o(\d+)/.exec(source.slice(offset))?.[1]);
    if (!Number.isNaN(index)) where = objects[index].where;
  }
  console.error(`${where}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
  errors++;
}
if (errors > 0) {
  console.error(`${errors} error(s) in ${objects.length} object(s)`);
  process.exit(1);
}
console.log(`${objects.length} object(s) valid, no unknown fields`);
