// Validates KEDA and Prometheus Operator resources with @kubernetes-models (npm), whose
// validators are generated from those projects' CRD schemas. Reads a JSON array of resources
// on stdin; prints one line per resource; exits 1 if any is invalid or of an unknown kind.
// NODE_PATH points at the node_modules that deploy/check/tools.sh installed.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const modules = process.env.SMSDEPLOY_NODE_MODULES;
const kinds = {
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js",
  "keda.sh/v1alpha1/TriggerAuthentication": "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication.js",
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
  "monitoring.coreos.com/v1/PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js",
  "monitoring.coreos.com/v1/PodMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor.js",
};

const input = JSON.parse(await new Promise((resolve) => {
  let s = "";
  process.stdin.on("data", (d) => (s += d)).on("end", () => resolve(s));
}));
let failed = 0;
for (const { source, resource } of input) {
  const key = `${resource.apiVersion}/${resource.kind}`;
  const name = `${source}: ${resource.kind}/${resource.metadata?.name}`;
  const file = kinds[key];
  if (!file) {
    console.log(`FAIL ${name}: no validator for ${key}`);
    failed++;
    continue;
  }
  const mod = await import(pathToFileURL(path.join(modules, file)).href);
  const Model = Object.values(mod)[0];
  try {
    new Model(resource).validate();
    console.log(`ok   ${name} (${key}, @kubernetes-models schema)`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
