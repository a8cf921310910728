// Drops optionalDependencies edges whose package the registry does not carry (opencode-ai
// names 12 platform packages; the registry reachable here serves only the linux-x64 ones),
// so that `npm ci` accepts the lock. Run in a CLI's folder after
// `npm install --package-lock-only --ignore-scripts`.
const fs = require("fs");
const lock = JSON.parse(fs.readFileSync("package-lock.json"));
for (const [at, pkg] of Object.entries(lock.packages)) {
  for (const dep of Object.keys(pkg.optionalDependencies || {})) {
    if (!lock.packages["node_modules/" + dep]) {
      console.log(`dropping ${at} -> ${dep} (not on the registry)`);
      delete pkg.optionalDependencies[dep];
    }
  }
}
fs.writeFileSync("package-lock.json", JSON.stringify(lock, null, 2) + "\n");
