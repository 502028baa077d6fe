// Checks KQL queries with Microsoft's own Kusto parser and analyzer (@kusto/language-service-next, pinned in
// package-lock.json), the way a Log Analytics workspace would read them: a query that does not parse, uses a keyword
// as a name, or names a column AppTraces lacks is reported here instead of at deployment, where the alert rules'
// skipQueryValidation lets it through, or at the first evaluation, which fails silently.
//
//   echo '{"rule-name": "AppTraces | take 1"}' | node tests/infra/kql_check.js
//
// stdin: a JSON object, name -> query. stdout: a JSON object, name -> the query's diagnostics (syntax and semantic),
// each {severity, code, message, start, length, text}; text is the span of the query it is about. Exits 2 with a
// one-line message on bad input or a parser failure.
"use strict";

// The language service is a Bridge.NET build: these two files define the globals Bridge and Kusto.
require("@kusto/language-service-next/bridge.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.js");

/* global Bridge, Kusto */

// The AppTraces table of a Log Analytics workspace, column for column, from Microsoft's "Azure Monitor Logs
// reference - AppTraces" (learn.microsoft.com/azure/azure-monitor/reference/tables/apptraces), where workspace-based
// Application Insights stores the app's log lines.
const APP_TRACES = [
  ["AppRoleInstance", "string"], ["AppRoleName", "string"], ["AppVersion", "string"], ["_BilledSize", "real"],
  ["ClientBrowser", "string"], ["ClientCity", "string"], ["ClientCountryOrRegion", "string"],
  ["ClientIP", "string"], ["ClientModel", "string"], ["ClientOS", "string"], ["ClientStateOrProvince", "string"],
  ["ClientType", "string"], ["IKey", "string"], ["_IsBillable", "string"], ["ItemCount", "int"],
  ["Measurements", "dynamic"], ["Message", "string"], ["OperationId", "string"], ["OperationName", "string"],
  ["ParentId", "string"], ["Properties", "dynamic"], ["ReferencedItemId", "string"], ["ReferencedType", "string"],
  ["ResourceGUID", "string"], ["_ResourceId", "string"], ["SDKVersion", "string"], ["SessionId", "string"],
  ["SeverityLevel", "int"], ["SourceSystem", "string"], ["_SubscriptionId", "string"], ["SyntheticSource", "string"],
  ["TenantId", "string"], ["TimeGenerated", "datetime"], ["Type", "string"], ["UserAccountId", "string"],
  ["UserAuthenticatedId", "string"], ["UserId", "string"],
];

function globals() {
  const symbols = Kusto.Language.Symbols;
  const schema = "(" + APP_TRACES.map(([name, type]) => `['${name}']:${type}`).join(", ") + ")";
  const table = new symbols.TableSymbol.$ctor7("AppTraces", schema, null);
  const workspace = new symbols.DatabaseSymbol.$ctor2("workspace", null, [table]);
  return Kusto.Language.GlobalState.Default.WithDatabase(workspace);
}

function diagnose(query, state) {
  const code = Kusto.Language.KustoCode.ParseAndAnalyze(query, state);
  return Bridge.toArray(code.GetDiagnostics()).map((d) => ({
    severity: String(d.Severity),
    code: d.Code,
    message: d.Message,
    start: d.Start,
    length: d.Length,
    text: query.substr(d.Start, d.Length),
  }));
}

function main(input) {
  const queries = JSON.parse(input);
  if (queries === null || typeof queries !== "object" || Array.isArray(queries)
      || Object.values(queries).some((q) => typeof q !== "string")) {
    throw new Error("expected a JSON object of name -> query text on stdin");
  }
  const state = globals();
  const out = {};
  for (const [name, query] of Object.entries(queries)) out[name] = diagnose(query, state);
  return out;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  try {
    process.stdout.write(JSON.stringify(main(input)) + "\n");
  } catch (err) {
    process.stderr.write(`kql_check: ${err && err.message ? err.message : err}\n`);
    process.exitCode = 2;
  }
});
