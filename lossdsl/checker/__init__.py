"""Syntax tree -> typed IR, in one pass, with every independent error reported.

    check_module(module) -> CheckedModule      (raises LossError)

Names are resolved (declarations, `let`s in any order, `def`s inlined at each
call), every expression gets a dtype and a symbolic shape from the rule of its
function in lossdsl/functions/, dimension symbols are unified across the file,
and `loss` must be a float scalar or a per-sample `[B]`. An error poisons the
expression it is in, so one mistake is reported once and the rest of the file
is still checked. The differentiability analysis and the domain warnings run
afterwards (lossdsl/analysis.py).

Read in this order:

    module.py        check_module: the file as a whole (a pred, one loss, its shape, def bodies)
    declarations.py  the names a file defines: declarations, types, defaults, lets, defs
    expressions.py   names, lets, records, operators, calls of functions and defs
    calls.py         a call's arguments: arity, keywords, static arguments
    indexing.py      indexing, slices, gathers
    rule_context.py  what a function's rule may ask (functions.RuleContext)
    broadcasting.py  broadcasting, and the quick-form and outer-product rules
    dims.py          dimension symbols: bound sizes, unification
    report.py        errors with their def-call chain; POISON
    literals.py      integer and number literals
    uses.py          `use`: the defs of other files
    loss_defs.py     a standard loss as a def (`use std.huber`), its dimensions bound at each call
    reuse.py         a check after an edit: each `let` the edit cannot have changed replayed
"""

from .module import check_module

__all__ = ["check_module"]
