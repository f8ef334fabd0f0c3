// Loads extension.js as VS Code does and calls activate(), with a stand-in for the `vscode`
// API (settings from the JSON object given as the argument, defaults otherwise) and for
// vscode-languageclient's LanguageClient (which must be installed: it is resolved first).
// Prints what was started as JSON:
//
//     node test/activate.js ['{"lossdsl.server.command": "/path/to/lossdsl"}']
//
// tests/test_editors.py reads the output.
"use strict";

const Module = require("module");
const path = require("path");

const settings = JSON.parse(process.argv[2] || "{}");
const events = [];

class LanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    this.options = { id, name, serverOptions, clientOptions };
  }
  start() {
    events.push({ started: this.options });
    return Promise.resolve();
  }
  stop() {
    events.push({ stopped: this.options.id });
    return Promise.resolve();
  }
  dispose() {}
}

const vscode = {
  workspace: {
    getConfiguration: (section) => ({
      get: (key, fallback) => (`${section}.${key}` in settings ? settings[`${section}.${key}`] : fallback),
    }),
  },
};

const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === "vscode") return vscode;
  if (request === "vscode-languageclient/node") {
    require.resolve(request, { paths: [path.join(__dirname, "..")] }); // throws if not installed
    return { LanguageClient };
  }
  return load.call(this, request, parent, isMain);
};

async function main() {
  const extension = require("../extension.js");
  const context = { subscriptions: [] };
  await extension.activate(context);
  const subscribed = context.subscriptions.map((s) => s instanceof LanguageClient);
  await extension.deactivate();
  process.stdout.write(JSON.stringify({ events, subscribed }) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
