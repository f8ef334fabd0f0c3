// The VS Code client of `lossdsl lsp`: starts the language server for .loss files and
// hands it every open document. Highlighting comes from syntaxes/lossdsl.tmLanguage.json.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("lossdsl");
  const server = {
    command: config.get("server.command", "lossdsl"),
    args: config.get("server.args", ["lsp"]),
  };
  client = new LanguageClient(
    "lossdsl",
    "lossdsl language server",
    { run: server, debug: server },
    { documentSelector: [{ language: "lossdsl" }] },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
