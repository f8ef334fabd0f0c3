"""The wiring: one handler per LSP method, each a thin layer over lossdsl/lsp/document.py
(analysis), hover.py, completion.py and lookup.py. State is one analysed `Document` per open
URI, rebuilt on open and on every change (full sync: the client sends the whole text).

The analysis runs in a worker thread, so the server keeps reading messages while it checks,
and a change that a newer change has overtaken before its turn is never analysed (typing
fast re-checks only the newest text). A request is answered from the analysis of the text
the client has now: one sent during a re-check waits for its types, so hover never describes
text that is no longer there, but not for the analyses after type checking (gradient paths,
domains), which only add findings to publish.

Positions: spans are 1-based columns in characters; the client counts in the units it
negotiated (UTF-16 unless it asked otherwise), converted here with the document's codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from .. import __version__
from .. import syntax as S
from ..checked import CheckedModule
from ..checker.reuse import LetMemo
from ..diagnostics import Diagnostic
from ..source import Span
from .completion import completions
from .document import Document, finish, type_check
from .hover import hover_at
from .incremental import IncrementalParser
from .lookup import definition_at

_KINDS = {
    "variable": T.CompletionItemKind.Variable,
    "function": T.CompletionItemKind.Function,
    "keyword": T.CompletionItemKind.Keyword,
    "field": T.CompletionItemKind.Field,
    "dimension": T.CompletionItemKind.TypeParameter,
}


# Turns of the event loop that a request waiting for a check needs, once the check is done,
# to be answered: its wait (through `asyncio.shield`), the handler, and writing the response.
_TURNS = 4


class LossLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("lossdsl", __version__, text_document_sync_kind=T.TextDocumentSyncKind.Full)
        self.documents: dict[str, Document] = {}  # the latest finished analysis of each open URI
        self.pending: dict[str, asyncio.Future] = {}  # the analysis under way
        self.latest: dict[str, int | None] = {}  # the newest version the client sent
        self.parsers: dict[str, IncrementalParser] = {}
        self.memos: dict[str, LetMemo] = {}  # what the last check of each document did
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lossdsl-analysis")

    async def refresh(self, uri: str) -> None:
        """Analyse the document's current text and publish its findings, unless a newer
        change overtakes it first. Requests are answered once its types are known; the
        analyses after type checking (gradient paths, domains) run after that, for the
        published findings only."""
        with _collector_paused():
            await self._refresh(uri)

    async def _refresh(self, uri: str) -> None:
        text_doc = self.workspace.get_text_document(uri)
        text, version = text_doc.source, text_doc.version
        self.latest[uri] = version

        def overtaken() -> bool:
            return self.latest.get(uri) != version

        def types() -> tuple[Document, CheckedModule | None] | None:
            if overtaken():
                return None  # overtaken while it waited for the worker
            parser = self.parsers.setdefault(uri, IncrementalParser())
            return type_check(text, to_fs_path(uri) or uri, parser, self.memos.setdefault(uri, LetMemo()))

        def rest(doc: Document, checked: CheckedModule) -> Document | None:
            if overtaken():
                return None
            return finish(doc, checked)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.worker, types)
        self.pending[uri] = future
        try:
            typed = await future
            if typed is None or overtaken():
                return
            doc, checked = typed
            self.documents[uri] = doc
            if checked is not None:
                # The requests that waited for these types are answered first: the rest of the
                # analysis, in the worker, would hold the interpreter while they are.
                for _ in range(_TURNS):
                    await asyncio.sleep(0)
                done = await loop.run_in_executor(self.worker, rest, doc, checked)
                if done is None or overtaken():
                    return
                doc = self.documents[uri] = done
        except Exception as err:  # a crash of the checker must not take the server down
            self.documents.pop(uri, None)
            self.window_log_message(
                T.LogMessageParams(T.MessageType.Error, f"lossdsl: cannot check {uri}: {type(err).__name__}: {err}")
            )
            return
        # The young generations (what this check made, and dropped) are collected now, a few
        # ms, rather than by the first request after the findings are published.
        gc.collect(1)
        diagnostics = [_diagnostic(text_doc, _in_this_file(doc, d)) for d in doc.findings]
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )

    async def document(self, uri: str) -> Document | None:
        """The analysis of the document's current text, once its types are known (None if
        the check failed). Read from the check itself, so that a request is never answered
        from the text before a change whose check has just finished."""
        while True:
            future = self.pending.get(uri)
            if future is None:
                return self.documents.get(uri)
            try:
                typed = await asyncio.shield(future)
            except Exception:  # refresh() reports a failed analysis
                return None
            if self.pending.get(uri) is future:
                return typed[0] if typed is not None else self.documents.get(uri)
            # a newer change arrived while this one was checked: wait for its check


_analysing = 0  # refreshes under way, with the collector paused
_frozen = 0  # refreshes since the collector last looked at what they left
_THAWED_EVERY = 200


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection from the start of a check to the publishing of its
    findings. A check makes and keeps (for hover) an object per expression, so the collector
    would run its full pass over every object of the server many times in one check: about
    half its time on a 1,000-line spec. Reference counting still frees what is dropped.

    Afterwards the young generations (what the check made, and dropped) are collected, a few
    ms, and what survives is frozen: a full pass over the ~100,000 objects a 1,000-line
    document keeps takes 100-200 ms, and would fall on whichever request came then. A check
    leaves about one object in a cycle that only such a pass frees (a few dozen in 40 checks
    of the bench's spec); every `_THAWED_EVERY` checks, all is thawed, for the next full pass.
    Entered and left in the event loop's thread only."""
    global _analysing, _frozen
    _analysing += 1
    gc.disable()
    try:
        yield
    finally:
        _analysing -= 1
        if _analysing == 0:
            gc.collect(1)
            _frozen += 1
            if _frozen >= _THAWED_EVERY:
                _frozen = 0
                gc.unfreeze()
            else:
                gc.freeze()
            gc.enable()


def _range(text_doc: TextDocument, span: Span | None) -> T.Range:
    if span is None:
        return T.Range(T.Position(0, 0), T.Position(0, 0))
    lines = text_doc.lines
    start = T.Position(span.line - 1, span.col - 1)
    if span.end_line is None or span.end_col is None:  # a point: one character wide
        end = T.Position(span.line - 1, span.col)
    else:
        end = T.Position(span.end_line - 1, span.end_col - 1)
    return text_doc.position_codec.range_to_client_units(lines, T.Range(start, end))


def _position(text_doc: TextDocument, position: T.Position) -> tuple[int, int]:
    """The client's position as a 1-based (line, column) in characters."""
    p = text_doc.position_codec.position_from_client_units(text_doc.lines, position)
    return p.line + 1, p.character + 1


def _in_this_file(doc: Document, d: Diagnostic) -> Diagnostic:
    """A finding in a file this one uses (inside a used `def`) is shown at the first `use`, with
    its own place at the start of the message; the editor shows one file's ranges."""
    if d.span is None or d.span.source.name == doc.source.name:
        return d
    uses = [s for s in (doc.module.statements if doc.module is not None else ()) if isinstance(s, S.Use)]
    return replace(d, message=f"{d.where}: {d.message}", span=uses[0].span if uses else None)


def _diagnostic(text_doc: TextDocument, d: Diagnostic) -> T.Diagnostic:
    """A finding as `lossdsl check` prints it: the message, then its notes and help."""
    message = d.message
    for note in d.notes:
        message += f"\nnote: {note}"
    if d.help:
        message += f"\nhelp: {d.help}"
    severity = T.DiagnosticSeverity.Error if d.severity == "error" else T.DiagnosticSeverity.Warning
    return T.Diagnostic(
        range=_range(text_doc, d.span), message=message, severity=severity, code=d.code, source="lossdsl"
    )


server = LossLanguageServer()


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: LossLanguageServer, params: T.DidOpenTextDocumentParams) -> None:
    await ls.refresh(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: LossLanguageServer, params: T.DidChangeTextDocumentParams) -> None:
    await ls.refresh(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: LossLanguageServer, params: T.DidSaveTextDocumentParams) -> None:
    """The other open documents that `use` a file read it from disk: check them again, so that
    what the saved file now says (or that it now exists) shows in them."""
    saved = params.text_document.uri
    users = [
        uri
        for uri, doc in ls.documents.items()
        if uri != saved and doc.module is not None and any(isinstance(s, S.Use) for s in doc.module.statements)
    ]
    await asyncio.gather(*(ls.refresh(uri) for uri in users))


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: LossLanguageServer, params: T.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    for state in (ls.documents, ls.pending, ls.latest, ls.parsers, ls.memos):
        state.pop(uri, None)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))


@server.feature(T.TEXT_DOCUMENT_HOVER)
async def hover(ls: LossLanguageServer, params: T.HoverParams) -> T.Hover | None:
    text_doc = ls.workspace.get_text_document(params.text_document.uri)
    doc = await ls.document(params.text_document.uri)
    found = None if doc is None else hover_at(doc, *_position(text_doc, params.position))
    if found is None:
        return None
    markdown, span = found
    return T.Hover(T.MarkupContent(T.MarkupKind.Markdown, markdown), _range(text_doc, span))


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
async def definition(ls: LossLanguageServer, params: T.DefinitionParams) -> T.Location | None:
    uri = params.text_document.uri
    text_doc = ls.workspace.get_text_document(uri)
    doc = await ls.document(uri)
    span = None if doc is None else definition_at(doc, *_position(text_doc, params.position))
    if span is None:
        return None
    if span.source.name == doc.source.name:  # type: ignore[union-attr]
        return T.Location(uri, _range(text_doc, span))
    if span.source.path is None:
        return None
    # a `def` of a used file: its range in that file's lines (the open document's, or the file's)
    there = span.source.path.resolve().as_uri()
    return T.Location(there, _range(ls.workspace.get_text_document(there), span))


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["."]))
async def completion(ls: LossLanguageServer, params: T.CompletionParams) -> T.CompletionList:
    uri = params.text_document.uri
    text_doc = ls.workspace.get_text_document(uri)
    doc = await ls.document(uri)
    if doc is None:
        return T.CompletionList(is_incomplete=False, items=[])
    line, col = _position(text_doc, params.position)
    before = text_doc.lines[line - 1][: col - 1] if line <= len(text_doc.lines) else ""
    items = [
        T.CompletionItem(
            label=i.label,
            kind=_KINDS[i.kind],
            detail=i.detail or None,
            documentation=T.MarkupContent(T.MarkupKind.Markdown, i.doc) if i.doc else None,
        )
        for i in completions(doc, before)
    ]
    return T.CompletionList(is_incomplete=False, items=items)


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: LossLanguageServer, params: T.DocumentFormattingParams) -> list[T.TextEdit]:
    """The whole document replaced by `lossdsl fmt`'s layout; no edit when it is already
    formatted, has a syntax error, or no formatter is installed."""
    try:
        from ..formatting import format_source  # type: ignore[import-not-found]
    except ImportError:
        return []
    from ..diagnostics import LossError

    uri = params.text_document.uri
    text_doc = ls.workspace.get_text_document(uri)
    try:
        formatted = format_source(text_doc.source, to_fs_path(uri) or uri)
    except LossError:
        return []
    if formatted == text_doc.source:
        return []
    return [T.TextEdit(T.Range(T.Position(0, 0), _end(text_doc)), formatted)]


def _end(text_doc: TextDocument) -> T.Position:
    lines = text_doc.lines
    if not lines:
        return T.Position(0, 0)
    if lines[-1].endswith("\n"):
        return T.Position(len(lines), 0)
    return T.Position(len(lines) - 1, text_doc.position_codec.client_num_units(lines[-1]))


def serve() -> None:
    """Speak LSP on stdin and stdout until the client says `exit`."""
    # The analysis thread holds the GIL for up to this long at a time; a request waiting for
    # it waits that long per step, so the default 5 ms would add tens of ms to a hover.
    sys.setswitchinterval(0.0005)
    server.start_io()
