"""The language server (`lossdsl lsp`): LSP 3.17 over stdio, built on pygls.

    document.py    a document analysed as `lossdsl check` does: findings, names, types
    incremental.py re-parsing only the statements an edit changed
    lookup.py      the node under the cursor and what its name means; go to definition
    hover.py       hover text: type and symbolic shape, a function's signature and gradient
    completion.py  names, functions of the table, keywords, record fields
    server.py      one handler per LSP method; positions in the client's units

Imports no ML framework, as `lossdsl check` does not.
"""
