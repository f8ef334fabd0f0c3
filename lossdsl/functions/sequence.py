"""Losses over sequences: `ctc_loss`, connectionist temporal classification.

`ctc_loss(log_probs, labels, input_lengths, label_lengths, blank=0)` takes batch-first scores
`float[B, T, C]`, padded labels `int[B, L]` and the lengths `int[B]` of both, and gives the
per-sample negative log-likelihood `float[B]` of the labels over every alignment of the first
`input_lengths[b]` steps (docs/language.md §3). The scores are normalised over `C` first
(`log_softmax`, which leaves log-probabilities as they are), as TensorFlow and optax do, so
logits and log-probabilities give the same loss on every backend. A sample no alignment fits
(fewer steps than labels plus repeated neighbours, or a label equal to `blank`) gives `inf`
with gradient 0, everywhere.
"""

from __future__ import annotations

from ..ir import Apply, Node
from ..types import FLOAT, INT, TensorType
from . import intervals as iv
from .intervals import INF
from .table import MIXES, CallSite, NoRule, Param, RuleContext, define

PARAMS = (
    Param("log_probs"),
    Param("labels"),
    Param("input_lengths"),
    Param("label_lengths"),
    Param("blank", "int", 0),
)
_RANKS = {
    0: (3, "float[B, T, C]: batch-first scores over T steps and C classes"),
    1: (2, "int[B, L]: each sample's labels, padded to L"),
    2: (1, "int[B]: the steps of each sample"),
    3: (1, "int[B]: the labels of each sample"),
}


def ctc(ck: RuleContext, site: CallSite):
    ck.need_dtype(site, 0, {FLOAT, INT})
    for i, what in ((1, "`ctc_loss` labels"), (2, "`ctc_loss` input lengths"), (3, "`ctc_loss` label lengths")):
        ck.need_dtype(site, i, {INT}, f"{what} must be int")
    for i, (rank, form) in _RANKS.items():
        t = site.t(i)
        if t.rank != rank:
            ck.fail(
                f"`ctc_loss` takes `{site.fn.params[i].name}` of rank {rank}, found `{site.arg_texts[i]}`: {t}",
                site.arg_spans[i],
                "E404",
                help=f"`{site.fn.params[i].name}` is {form}",
            )
    batch = site.t(0).shape[:1]
    for i in (1, 2, 3):
        ck.same_shape(batch, site.t(i).shape[:1], site.arg_spans[i], f"the batch axis of `{site.arg_texts[i]}`")
    blank = site.static["blank"]
    classes = site.t(0).shape[2]
    if not isinstance(blank.value, int) or isinstance(blank.value, bool) or blank.value < 0:
        ck.fail(
            f"`blank` must be a class of `{site.arg_texts[0]}`, found {blank.value!r}",
            blank.span or site.span,
            "E405",
            help="`blank=` is the index of the blank class along the last axis, e.g. `blank=0`",
        )
    if classes.is_literal and blank.value >= classes.value:
        ck.fail(
            f"`blank={blank.value}` is not a class of `{site.arg_texts[0]}` ({classes.value} classes)",
            blank.span or site.span,
            "E405",
            help=f"the classes are 0 to {classes.value - 1}",
        )
    ck.need_size(classes, blank.value + 1, blank.span or site.span, f"`ctc_loss` with `blank={blank.value}`")
    return TensorType(FLOAT, batch), {"blank": blank.value}


def _indices(n: Apply):
    """Labels are classes (padding included); a length counts steps or labels, up to all of them."""
    log_probs, labels, input_lengths, label_lengths = n.args
    _, steps, classes = log_probs.type.shape
    return [(labels, classes), (input_lengths, steps.plus(1)), (label_lengths, labels.type.shape[1].plus(1))]


def _sharding(g, n: Apply) -> Node:
    """Each sample's loss reads its own rows: a split batch needs nothing; a split sequence or
    class axis would put one alignment on several replicas."""
    log_probs, labels = n.args[:2]
    if g.dim in log_probs.type.shape[1:] or g.dim in labels.type.shape[1:]:
        g.fail(n, "`ctc_loss`")
    return n


define(
    "ctc_loss",
    PARAMS,
    "sequence",
    ctc,
    "float[B]: -log of the probability of each sample's labels over all CTC alignments of its steps",
    known_as=("ctc", "CTCLoss"),
    grad="the framework's: through its forward-backward recursion; 0 for a sample no alignment fits",
    vjp=NoRule("the framework differentiates it"),
    value_range=iv.constant(0.0, INF),
    fold=NoRule("its operands are tensors"),
    lanes=MIXES,
    sharding=_sharding,
    keep_dtype=(1, 2, 3),
    index_operands=_indices,
)
