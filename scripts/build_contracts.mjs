// Compiles contracts/src/*.sol with the pinned npm `solc` (solcjs, offline) through its standard-JSON
// interface and writes one artifact per deployable contract to contracts/artifacts/<Name>.json.
// Usage: node scripts/build_contracts.mjs [output-dir]   (default: contracts/artifacts)
// The output is deterministic (fixed settings, relative source paths, no metadata hash), so a test can
// rebuild into a temporary directory and compare byte for byte to catch stale committed artifacts.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const solc = require("solc");

const SOURCE_DIR = join(root, "contracts", "src");
const outDir = resolve(process.argv[2] ?? join(root, "contracts", "artifacts"));
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

const sources = {};
const sourcesSha256 = {};
for (const file of readdirSync(SOURCE_DIR).filter((f) => f.endsWith(".sol")).sort()) {
  const key = `src/${file}`;
  const content = readFileSync(join(SOURCE_DIR, file), "utf8");
  sources[key] = { content };
  sourcesSha256[key] = sha256(content);
}

const input = { language: "Solidity", sources, settings: SETTINGS };
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) {
  console.error(e.formattedMessage);
}
if (errors.length > 0) {
  process.exit(1);
}

mkdirSync(outDir, { recursive: true });
const written = [];
for (const [sourceName, contracts] of Object.entries(output.contracts).sort()) {
  for (const [contractName, compiled] of Object.entries(contracts).sort()) {
    const bytecode = compiled.evm.bytecode.object;
    if (!bytecode) {
      continue; // Abstract contracts and interfaces have nothing to deploy.
    }
    const artifact = {
      contractName,
      sourceName,
      compilerVersion: solc.version(),
      settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer, metadata: SETTINGS.metadata },
      sourcesSha256,
      abi: compiled.abi,
      bytecode: `0x${bytecode}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    };
    writeFileSync(join(outDir, `${contractName}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
    written.push(contractName);
  }
}
console.log(`build_contracts: wrote ${written.join(", ")} to ${outDir}`);
