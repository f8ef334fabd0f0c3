"""The checker: every rule of docs/language.md §1-§3 with a passing and a failing case."""

from __future__ import annotations

import pytest

from lossdsl.types import Dim

from conftest import check_err, check_ok, codes

HEAD = "pred yhat: float[B, C]\ntarget y: float[B, C]\n"


def ok(body: str, head: str = HEAD):
    return check_ok(head + body)


def err(body: str, head: str = HEAD):
    return check_err(head + body)


def loss_type(body: str, head: str = HEAD) -> str:
    return str(ok(body, head).loss.type)


# ---- declarations and names ------------------------------------------------------------

def test_declarations_are_exposed_with_kinds_and_types():
    m = check_ok("""
        pred yhat: float[B, C]
        target y: int[B]
        input meta: {w: float[B]}
        context cw: float[C]
        param alpha: float = 0.25
        loss = mean(meta.w * -pick(log_softmax(yhat), y) * cw[y]) * alpha
    """)
    assert [(d.kind, d.name, str(d.type)) for d in m.declarations] == [
        ("pred", "yhat", "float[B, C]"), ("target", "y", "int[B]"), ("input", "meta", "{w: float[B]}"),
        ("context", "cw", "float[C]"), ("param", "alpha", "float")]
    assert m.declaration("alpha").default == 0.25
    assert m.symbols == ["B", "C"]
    assert m.signature().startswith("(yhat: float[B, C], y: int[B], meta: {w: float[B]}, *, alpha: float = 0.25)")


def test_name_defined_twice():
    assert codes(err("let a = yhat\nlet a = y\nloss = mean(a)\n")) == ["E203"]


def test_lets_may_be_used_before_their_definition():
    ok("loss = mean(a)\nlet a = (yhat - y)^2\n")


def test_let_cycle_is_an_error():
    assert "E206" in codes(err("let a = b\nlet b = a + yhat\nloss = mean(a)\n"))


def test_unknown_name_suggests_a_close_one():
    e = err("loss = mean(yhta - y)\n")
    assert e.first.code == "E201" and "`yhat`" in e.first.help


def test_unknown_function_suggests_a_close_one():
    e = err("loss = mean(sofmax(yhat))\n")
    assert e.first.code == "E202" and "`softmax`" in e.first.help


@pytest.mark.parametrize("called,hint", [
    ("sortt", "did you mean `sort`?"), ("argsrt", "did you mean `argsort`?"), ("topK", "did you mean `topk`?"),
    ("arccos", "`arccos` is spelled `acos` here"), ("arctan2", "`arctan2` is spelled `atan2` here"),
    ("clamp", "`clamp` is spelled `clip` here"), ("amax", "`amax` is spelled `max` here"),
    ("squeeze", "`x[:, 0]`"), ("reshape", "`flatten(x, [H, W])`"), ("cat", "`cat` is spelled `concat` here"), ("unsqueeze", "`x[:, None]`"), ("isinf", "not isfinite(x) and not isnan(x)"),
])
def test_unknown_function_points_to_the_name_or_idiom_meant(called, hint):
    e = err(f"loss = mean({called}(yhat))\n")
    assert e.first.code == "E202" and hint in e.first.help, e.first.help
    assert "square" not in e.first.help and "sqrt" not in e.first.help


def test_a_function_used_as_a_value():
    assert codes(err("loss = mean(log)\n")) == ["E208"]


def test_a_value_called_as_a_function():
    assert codes(err("loss = mean(yhat(1))\n")) == ["E208"]


def test_reserved_names_cannot_be_declared():
    assert codes(err("input reduction: float[B]\nloss = mean(yhat)\n")) == ["E207"]


def test_builtin_functions_cannot_be_redefined():
    assert codes(err("def log(x) = x\nloss = mean(yhat)\n")) == ["E211"]


def test_a_pred_must_be_float():
    assert "E306" in codes(check_err("pred k: int[B]\nloss = mean(float(k))\n"))


def test_at_least_one_pred():
    assert codes(check_err("target y: float[B]\nloss = mean(y)\n")) == ["E209"]


def test_exactly_one_loss():
    assert codes(err("let a = yhat\n")) == ["E204"]
    assert codes(err("loss = mean(yhat)\nloss = mean(y)\n")) == ["E205"]


# ---- records -------------------------------------------------------------------------------

def test_record_fields_are_leaves():
    m = ok("input m: {w: float[B], inner: {v: float[B]}}\nloss = mean(m.w * m.inner.v * sum(yhat, axis=C))\n")
    assert sorted(m.args) == [("m", ("inner", "v")), ("m", ("w",)), ("yhat", ())]


def test_unknown_field():
    e = err("input m: {weight: float[B]}\nloss = mean(m.wieght * sum(yhat, axis=C))\n")
    assert e.first.code == "E210" and "`weight`" in e.first.help


def test_a_record_is_not_a_value():
    assert codes(err("input m: {w: float[B]}\nloss = mean(m * yhat)\n")) == ["E307"]


def test_field_of_a_tensor():
    assert codes(err("loss = mean(yhat.w)\n")) == ["E210"]


# ---- dtypes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body, expected", [
    ("loss = mean(yhat + 1)\n", "float"),
    ("let k = argmax(yhat, axis=C)\nloss = mean(float(k + 1) * sum(yhat, axis=C))\n", "float"),
    ("loss = mean(yhat / 2)\n", "float"),
])
def test_dtype_of_arithmetic(body, expected):
    assert loss_type(body) == expected


def test_int_and_float_mix_to_float():
    m = ok("input k: int[B]\nlet s = k * sum(yhat, axis=C)\nloss = mean(s)\n")
    assert str(m.lets["s"].type) == "float[B]"


def test_int_divided_by_int_is_float():
    m = ok("input k: int[B]\nlet d = k / 2\nloss = mean(d * sum(yhat, axis=C))\n")
    assert str(m.lets["d"].type) == "float[B]"


def test_int_power_rules():
    m = ok("input k: int[B]\nlet a = k ^ 2\nlet b = k ^ -1\nlet c = k ^ k\nloss = mean(yhat)\n")
    assert [str(m.lets[n].type) for n in "abc"] == ["int[B]", "float[B]", "float[B]"]


def test_comparisons_give_bool_and_where_needs_bool():
    m = ok("let c = yhat > y\nloss = mean(where(c, yhat, y))\n")
    assert str(m.lets["c"].type) == "bool[B, C]"
    assert codes(err("loss = mean(where(yhat, yhat, y))\n")) == ["E303"]


def test_logical_operators_need_bool():
    ok("loss = mean(where(yhat > 0 and not (y > 0) or yhat < -1, yhat, 0.0))\n")
    assert codes(err("loss = mean(where(yhat and y, yhat, 0.0))\n")) == ["E303"]


def test_arithmetic_on_bool_is_an_error_with_a_hint():
    e = err("loss = mean((yhat > 0) * yhat)\n")
    assert e.first.code == "E302" and "float(yhat > 0)" in e.first.help


def test_indices_must_be_int():
    assert codes(err("loss = mean(pick(yhat, sum(y, axis=C)))\n")) == ["E304"]


def test_segment_ids_and_one_hot_classes_must_be_int():
    head = "pred yhat: float[B]\ninput g: float[B]\nparam w: float[G] = [1.0, 2.0]\n"
    assert codes(check_err(head + "loss = sum(w * segment_sum(yhat, g, G))\n")) == ["E304"]
    assert codes(check_err(head + "loss = sum(one_hot(g, G) * yhat[:, None])\n")) == ["E304"]


@pytest.mark.parametrize("decl, code", [
    ("param a: float = 1", None),
    ("param a: float = -2.5", None),
    ("param a: float = true", "E305"),
    ("param a: int = 2", None),
    ("param a: int = 2.0", "E305"),
    ("param a: bool = false", None),
    ("param a: bool = 0", "E305"),
    ("param a: float[3] = [1, 2, 3]", None),
    ("param a: float[3] = [1, 2]", "E305"),
    ("param a: float[2, 2] = [[1, 2], [3]]", "E305"),
    ("param a: float[2] = 1.0", "E305"),
])
def test_param_default_must_fit_its_type(decl, code):
    text = f"pred yhat: float[B]\n{decl}\nloss = mean(yhat)\n"
    if code is None:
        check_ok(text)
    else:
        assert codes(check_err(text)) == [code]


def test_a_list_default_binds_its_dimension():
    m = check_ok("pred yhat: float[B]\ninput g: int[B]\nparam w: float[G] = [1, 2, 3]\n"
                 "loss = sum(w * segment_mean(yhat, g, G))\n")
    assert m.bindings["G"][0] == 3


# ---- shapes: broadcasting ---------------------------------------------------------------------

def test_equal_shapes_combine():
    assert loss_type("loss = mean(yhat - y)\n") == "float"


def test_distinct_dims_never_broadcast():
    e = err("input w: float[B]\nloss = mean(w * yhat)\n")
    assert e.first.code == "E401"
    assert e.first.help == "to line up the leading axes, insert an axis: `w[:, None]`"


def test_an_inserted_axis_fixes_the_broadcast():
    ok("input w: float[B]\nloss = mean(w[:, None] * yhat)\n")


def test_trailing_alignment_broadcasts():
    ok("context cw: float[C]\nloss = mean(cw * yhat)\n")


def test_literal_one_broadcasts():
    ok("input w: float[B, 1]\nloss = mean(w * yhat)\n")


def test_different_literals_do_not_broadcast():
    assert codes(check_err("pred a: float[3]\ntarget b: float[4]\nloss = mean(a - b)\n")) == ["E401"]


def test_a_symbol_meeting_a_literal_is_bound():
    m = ok("context cw: float[5]\nloss = mean(cw * yhat)\n")
    assert m.bindings["C"][0] == 5


def test_a_symbol_bound_twice_names_both_sources():
    e = err("context cw: float[5]\ninput v: float[7]\nloss = mean(cw * yhat) + mean(v * y)\n")
    assert e.first.code == "E402"
    assert "`C` is 5 from `cw * yhat` (line 5) but 7 here" in e.first.message


def test_scalars_broadcast_with_everything():
    ok("param a: float = 1\nloss = mean(a * yhat + 2)\n")


# ---- shapes: slicing and indexing --------------------------------------------------------------

def test_neighbour_differences_have_affine_size():
    m = check_ok("pred p: float[B, H]\nlet d = p[:, 1:] - p[:, :-1]\nloss = mean(d)\n")
    assert str(m.lets["d"].type) == "float[B, H - 1]"


def test_affine_size_does_not_combine_with_the_full_axis():
    e = check_err("pred p: float[B, H]\nlet d = p[:, 1:] - p[:, :-1]\nloss = mean(d * p)\n")
    assert e.first.code == "E401" and "`H - 1` and `H` differ by 1" in e.first.notes[0]


def test_slices_compose():
    m = check_ok("pred p: float[B, H]\nlet d = p[:, 1:][:, :-1]\nlet e = p[:, 2:-1]\nloss = mean(d) + mean(e)\n")
    assert str(m.lets["d"].type) == "float[B, H - 2]"
    assert str(m.lets["e"].type) == "float[B, H - 3]"


def test_literal_slices_have_literal_sizes():
    m = check_ok("pred p: float[B, 10]\nlet a = p[:, 2:5]\nlet b = p[:, ::3]\nlet c = p[:, -4:]\n"
                 "loss = mean(a) + mean(b) + mean(c)\n")
    assert [str(m.lets[n].type) for n in "abc"] == ["float[B, 3]", "float[B, 4]", "float[B, 4]"]


def test_integer_index_drops_an_axis_and_none_adds_one():
    m = ok("let a = yhat[0]\nlet b = yhat[:, -1]\nlet c = yhat[None, ..., None]\nloss = mean(yhat)\n")
    assert [str(m.lets[n].type) for n in "abc"] == ["float[C]", "float[B]", "float[1, B, C, 1]"]


def test_too_many_indices():
    assert codes(err("loss = mean(yhat[0, 0, 0])\n")) == ["E406"]


def test_index_out_of_range_on_a_literal_axis():
    assert codes(check_err("pred p: float[B, 3]\nloss = mean(p[:, 3])\n")) == ["E406"]


def test_a_literal_in_a_gather_is_range_checked_like_a_plain_index():
    assert codes(check_err("pred p: float[B, 3]\ninput k: int[B]\nloss = mean(p[k, 3])\n")) == ["E406"]
    m = check_ok("pred p: float[B, C]\ninput k: int[B]\nloss = mean(p[k, 5]) + mean(p[k, -1])\n")
    assert [(str(c.dim), c.minimum) for c in m.constraints] == [("C", 6)]


def test_an_axis_indexed_by_its_own_size_is_past_the_end():
    e = check_err("pred p: float[B]\nloss = p[B]\n")
    assert codes(e) == ["E406"] and "past the end" in str(e) and "`-1`" in str(e)
    check_ok("pred p: float[B]\nloss = p[B - 1]\n")  # the last element, computed


def test_a_shape_note_without_its_hash_is_explained():
    e = check_err("pred p: float[B, H]\nlet q = -p  [B, H]\nloss = mean(q)\n")
    assert codes(e) == ["E406"] and "make it a comment: `# [B, H]`" in str(e)


def test_slice_bounds_must_be_literals():
    assert codes(err("input k: int\nloss = mean(yhat[k:])\n")) == ["E407"]


def test_gather_with_int_tensors():
    m = ok("context W: float[C, C]\nlet w = W[argmax(y, axis=C), argmax(yhat, axis=C)]\n"
           "loss = mean(w * sum(yhat, axis=C))\n")
    assert str(m.lets["w"].type) == "float[B]"


def test_gather_indices_broadcast_together():
    assert codes(err("context W: float[C, C]\ninput i: int[B]\ninput j: int[C]\nloss = mean(W[i, j])\n")) \
        == ["E401"]


def test_gather_cannot_mix_slices():
    assert codes(err("input i: int[B]\nloss = mean(yhat[i, :])\n")) == ["E409"]


def test_bool_mask_index_is_rejected_with_a_hint():
    e = err("loss = mean(yhat[yhat > 0])\n")
    assert e.first.code == "E408" and "where" in e.first.help


# ---- reductions, axes, functions --------------------------------------------------------------

def test_reduction_by_axis_symbol():
    m = ok("let s = sum(yhat, axis=C)\nlet k = mean(yhat, axis=C, keepdims=true)\nloss = mean(s)\n")
    assert str(m.lets["s"].type) == "float[B]" and str(m.lets["k"].type) == "float[B, 1]"


def test_reduction_over_several_axes():
    m = ok("let s = sum(yhat, axis=(B, C))\nlet t = max(yhat, axis=(0, -1))\nloss = s + t\n")
    assert str(m.lets["s"].type) == "float"


def test_axis_symbol_must_name_exactly_one_axis():
    e = check_err("pred a: float[N, N]\nloss = mean(sum(a, axis=N))\n")
    assert e.first.code == "E405" and "names 2 axes" in e.first.message
    assert codes(err("loss = mean(sum(yhat, axis=T))\n")) == ["E405"]
    assert codes(err("loss = mean(sum(yhat, axis=2))\n")) == ["E405"]


def test_argmax_needs_an_axis_above_rank_one():
    assert codes(err("loss = mean(float(argmax(yhat)) * yhat)\n")) == ["E405"]
    check_ok("pred v: float[N]\nloss = mean(v) + float(argmax(v))\n")


def test_static_arguments_must_be_literals():
    assert codes(err("input k: int\nloss = mean(sum(yhat, axis=k))\n")) == ["E504"]
    assert codes(err("loss = mean(sum(yhat, keepdims=1))\n")) == ["E504"]


def test_arity_and_keywords():
    assert codes(err("loss = mean(clip(yhat, 0.0))\n")) == ["E501"]
    assert codes(err("loss = mean(exp(yhat, y))\n")) == ["E501"]
    e = err("loss = mean(sum(yhat, dim=1))\n")
    assert e.first.code == "E502" and "`axis`" in e.first.help
    assert codes(err("loss = mean(sum(yhat, axis=0, axis=1))\n")) == ["E503"]


def test_softmax_and_cumsum_default_to_the_last_axis():
    m = ok("let s = softmax(yhat)\nlet c = cumsum(yhat)\nloss = mean(s * c)\n")
    assert m.lets["s"].attr("axis") == 1 and m.lets["c"].attr("axis") == 1


def test_var_and_std_default_to_population_form():
    m = ok("let v = var(yhat, axis=C)\nlet s = std(yhat, ddof=1)\nloss = mean(v) + s\n")
    assert m.lets["v"].attr("ddof") == 0 and m.lets["s"].attr("ddof") == 1


def test_pick_shape_rule():
    ok("input k: int[B]\nloss = mean(pick(yhat, k))\n")
    assert codes(err("input k: int[C]\nloss = mean(pick(yhat, k))\n")) == ["E401"]
    assert codes(err("input k: int[B, C]\nloss = mean(pick(yhat, k))\n")) == ["E404"]


def test_one_hot_shape_rule():
    m = ok("input k: int[B]\nlet h = one_hot(k, C)\nloss = mean(h * yhat)\n")
    assert str(m.lets["h"].type) == "float[B, C]"


def test_one_hot_needs_a_declared_dimension():
    assert codes(err("input k: int[B]\nloss = mean(one_hot(k, K))\n")) == ["E809"]


def test_segment_shape_rule():
    m = check_ok("pred v: float[N, D]\ninput g: int[N]\nparam w: float[G] = [1.0, 2.0]\n"
                 "let s = segment_sum(v, g, G)\nloss = sum(w[:, None] * s)\n")
    assert str(m.lets["s"].type) == "float[G, D]"
    e = check_err("pred v: float[N, D]\ninput g: int[D]\nparam w: float[G] = [1.0]\n"
                  "loss = sum(w[:, None] * segment_sum(v, g, G))\n")
    assert e.first.code == "E401"


def test_matmul_shape_rule():
    m = check_ok("pred a: float[N, D]\ncontext b: float[D, K]\ncontext v: float[D]\nlet m = a @ b\n"
                 "let w = a @ v\nloss = mean(m) + mean(w)\n")
    assert str(m.lets["m"].type) == "float[N, K]" and str(m.lets["w"].type) == "float[N]"
    assert codes(check_err("pred a: float[N, D]\ncontext b: float[K, D]\nloss = mean(a @ b)\n")) == ["E410"]


def test_dot_and_transpose():
    m = ok("let d = dot(yhat, y)\nlet t = transpose(yhat)\nloss = mean(d) + mean(t)\n")
    assert str(m.lets["d"].type) == "float[B]" and str(m.lets["t"].type) == "float[C, B]"
    assert codes(check_err("pred v: float[N]\nloss = mean(transpose(v))\n")) == ["E404"]


def test_norm_p_must_be_at_least_one():
    ok("loss = mean(norm(yhat, p=1, axis=C))\n")
    assert codes(err("loss = mean(norm(yhat, p=0.5, axis=C))\n")) == ["E504"]


def test_dimension_sizes_are_int_values():
    m = check_ok("pred v: float[N]\nlet avg = sum(v) / N\nloss = avg\n")
    assert str(m.lets["avg"].type) == "float"


# ---- defs ---------------------------------------------------------------------------------------

def test_def_is_inlined_per_call_site_with_its_own_types():
    m = ok("def sq(a) = a * a\nlet s = sq(yhat)\nlet t = sq(2)\nloss = mean(s) + float(t)\n")
    assert str(m.lets["s"].type) == "float[B, C]" and str(m.lets["t"].type) == "int"


def test_def_keyword_arguments():
    ok("def h(r, d) = where(abs(r) <= d, 0.5 * r^2, d * (abs(r) - 0.5 * d))\nloss = mean(h(d=1.0, r=yhat - y))\n")


def test_def_arity():
    assert codes(err("def h(a, b) = a + b\nloss = mean(h(yhat))\n")) == ["E501"]
    assert codes(err("def h(a, b) = a + b\nloss = mean(h(yhat, y, y))\n")) == ["E501"]


def test_recursive_def_is_an_error():
    assert codes(err("def f(x) = f(x - 1)\nloss = mean(f(yhat))\n")) == ["E206"]


def test_error_in_a_def_body_names_the_call():
    e = err("input w: float[B]\ndef f(v) = w * v\nloss = mean(f(yhat))\n")
    assert e.first.code == "E401" and e.first.span.line == 4
    assert any("called at line 5" in n for n in e.first.notes)


def test_unknown_name_in_an_unused_def():
    assert codes(err("def f(v) = v * nope\nloss = mean(yhat)\n")) == ["E201"]


# ---- the loss -------------------------------------------------------------------------------------

def test_loss_may_be_a_scalar_or_per_sample():
    assert ok("loss = mean(yhat)\n").loss.type.rank == 0
    m = ok("loss = sum((yhat - y)^2, axis=C)\n")
    assert str(m.loss.type) == "float[B]" and m.per_sample


def test_loss_of_other_shapes_is_an_error_with_a_reduction_hint():
    e = err("loss = (yhat - y)^2\n")
    assert e.first.code == "E602" and "axis=C" in e.first.help
    assert codes(err("loss = sum(yhat, axis=B)\n")) == ["E602"]


def test_loss_must_be_float():
    assert codes(err("loss = sum(argmax(yhat, axis=C))\n")) == ["E601"]


# ---- gradients -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "loss = mean(float(argmax(yhat, axis=C)))\n",
    "loss = mean(float(yhat > y))\n",
    "loss = mean(round(yhat))\n",
    "loss = mean(stop_gradient(yhat) - y)\n",
    "loss = mean(float(int(yhat)))\n",
    "loss = mean(sign(yhat) * y)\n",
])
def test_a_pred_reaching_loss_only_through_a_gradient_stop_is_an_error(body):
    e = err(body)
    assert e.first.code == "E603" and "would be zero everywhere" in e.first.message


def test_an_unused_pred_is_an_error():
    e = check_err("pred a: float[B]\npred b: float[B]\nloss = mean(a)\n")
    assert e.first.code == "E604" and "`b`" in e.first.message


def test_a_pred_with_one_differentiable_path_is_fine():
    ok("loss = mean(float(argmax(yhat, axis=C)) * sum(yhat, axis=C))\n")
    ok("loss = mean(where(yhat > 0, yhat, 0.0))\n")


def test_gather_indices_carry_no_gradient_but_the_table_does():
    ok("context W: float[C, C]\nloss = mean(W[argmax(y, axis=C), argmax(yhat, axis=C)] * sum(yhat, axis=C))\n")
    e = err("context W: float[C, C]\nloss = mean(W[argmax(y, axis=C), argmax(yhat, axis=C)])\n")
    assert e.first.code == "E603"


# ---- warnings -----------------------------------------------------------------------------------------

def test_unguarded_log_warns_and_guarded_log_does_not():
    m = ok("loss = -mean(y * log(yhat))\n")
    assert [w.code for w in m.warnings] == ["W701"]
    for guarded in ["log(clip(yhat, 1e-7, 1.0))", "log(yhat^2 + 1e-7)", "log(exp(yhat) + 1)",
                    "where(yhat > 0, log(yhat), 0.0)", "log(softmax(yhat))", "log(sigmoid(yhat))",
                    "log(1 - sigmoid(yhat))", "log(softplus(yhat) + 1e-6)"]:
        assert ok(f"loss = -mean(y * {guarded})\n").warnings == [], guarded


def test_division_by_a_possible_zero_warns():
    assert [w.code for w in ok("loss = mean(y / yhat)\n").warnings] == ["W701"]
    assert ok("loss = mean(y / (abs(yhat) + 1e-6))\n").warnings == []


@pytest.mark.parametrize("fn", ["acos", "asin"])
def test_acos_and_asin_warn_outside_minus_one_to_one_and_not_inside(fn):
    m = ok(f"loss = mean({fn}(yhat))\n")
    assert [w.code for w in m.warnings] == ["W701"] and "outside [-1, 1]" in m.warnings[0].message
    for inside in [f"{fn}(tanh(yhat))", f"{fn}(clip(yhat, -1.0, 1.0))", f"{fn}(sigmoid(yhat) * 2.0 - 1.0)",
                   f"where((yhat > -1.0) and (yhat < 1.0), {fn}(yhat), 0.0)", f"{fn}(sin(yhat))"]:
        assert ok(f"loss = mean({inside})\n").warnings == [], inside


def test_the_value_ranges_of_the_new_functions_clear_later_domain_checks():
    # cosh >= 1, exp of atan is positive, a sorted softmax stays in [0, 1]: no warning downstream
    for body in ["log(cosh(yhat))", "log(acos(tanh(yhat)) + 1e-6)", "sqrt(atan2(yhat, y) + 3.15)",
                 "log(sort(softmax(yhat), axis=C) + 1e-7)", "log(topk(sigmoid(yhat), 2) + 1e-7)",
                 "sqrt(cumprod(sigmoid(yhat), axis=C))", "log(logcumsumexp(yhat) - min(yhat) + 1.0)"]:
        assert ok(f"loss = mean({body})\n").warnings == [], body
    assert [w.code for w in ok("loss = mean(log(sinh(yhat)))\n").warnings] == ["W701"]


def test_topk_needs_k_elements_along_its_axis():
    assert loss_type("let t = topk(yhat, 2, axis=C)\nloss = mean(t)\n") == "float"
    assert codes(err("loss = mean(topk(yhat, 0))\n")) == ["E504"]
    assert codes(err("loss = mean(topk(yhat, 3, axis=1))\n", head="pred yhat: float[B, 2]\n")) == ["E406"]
    assert codes(err("loss = mean(topk(yhat, k, axis=1))\n")) == ["E504"]  # k is a literal


def test_permute_names_every_axis_once():
    assert loss_type("let p = permute(yhat, [C, B])\nloss = mean(p)\n") == "float"
    assert str(ok("let p = permute(yhat, [C, B])\nloss = mean(p * transpose(y))\n").lets["p"].type) == "float[C, B]"
    assert codes(err("loss = mean(permute(yhat, [C]))\n")) == ["E405"]
    assert codes(err("loss = mean(permute(yhat, [C, C]))\n")) == ["E405"]
    assert codes(err("loss = mean(permute(yhat, [C, D]))\n")) == ["E405"]
    assert codes(err("loss = mean(yhat * [1, 2])\n")) == ["E308"]  # a list is no value


def test_pad_grows_its_axis_by_before_and_after():
    m = ok("let p = pad(yhat, 1, 2, axis=C)\nloss = mean(p[:, 1:-2] * y)\n")
    assert str(m.lets["p"].type) == "float[B, C + 3]"
    assert codes(err("loss = mean(pad(yhat, -1, 0))\n")) == ["E504"]


def test_concat_adds_the_sizes_of_its_axis_and_stack_adds_an_axis():
    head = "pred a: float[B, C]\npred b: float[B, D]\n"
    m = ok("let j = concat([a, b], axis=C)\nlet k = concat([b, a, a], axis=-1)\nlet s = stack([a, a], axis=1)\n"
           "loss = mean(j) + mean(k) + mean(s)\n", head)
    assert str(m.lets["j"].type) == "float[B, C + D]"
    assert str(m.lets["k"].type) == "float[B, C + C + D]"
    assert str(m.lets["s"].type) == "float[B, 2, C]"
    # the same sizes in another order are the same size; a literal joins the offset
    ok("loss = mean(concat([a, b], axis=1) * concat([b, a], axis=1)) + mean(concat([a, a[:, :2]], axis=1))\n", head)
    one = "pred a: float[B, C]\n"
    assert str(ok("let j = concat([a[:, 1:], a[:, :2]], axis=C)\nloss = mean(j)\n", one).lets["j"].type) \
        == "float[B, C + 1]"
    ok("loss = mean(concat([a[:, :1], a[:, 1:]], axis=C) * a)\n", one)  # 1 + (C - 1) is C
    assert codes(err("loss = mean(concat([a, transpose(b)], axis=C))\n", head)) == ["E401"]
    assert loss_type("loss = mean(sum(concat([a, b], axis=C), axis=D))\n", head) == "float"  # D names C + D
    assert codes(err("loss = mean(concat([a, b[0]], axis=C))\n", head)) == ["E404"]
    assert codes(err("loss = mean(concat(a, axis=C))\n", head)) == ["E504"]
    assert codes(err("loss = mean(stack([a, b]))\n", head)) == ["E401"]
    assert codes(err("loss = mean(stack([a, a], axis=C))\n", head)) == ["E405"]


def test_flatten_multiplies_sizes_and_unflatten_splits_them_back():
    head = "pred a: float[B, H, W]\n"
    m = ok("let f = flatten(a, [H, W])\nlet g = flatten(a, [B, H])\nlet u = unflatten(f, [H, W])\n"
           "loss = mean(f) + mean(g) + mean(u * a)\n", head)
    assert str(m.lets["f"].type) == "float[B, H*W]" and str(m.lets["g"].type) == "float[B*H, W]"
    assert m.lets["u"].type == m.lets["f"].args[0].type
    assert str(ok("let f = flatten(stack([a, a], axis=-1), [W, -1])\nloss = mean(f)\n", head).lets["f"].type) \
        == "float[B, H, 2*W]"
    assert codes(err("loss = mean(flatten(a, [B, W]))\n", head)) == ["E405"]  # not adjacent
    assert codes(err("loss = mean(flatten(a, [W, H]))\n", head)) == ["E405"]  # not in order
    assert codes(err("loss = mean(flatten(a[:, 1:], [H, W]))\n", head)) == ["E404"]  # (H - 1)*W
    assert codes(err("loss = mean(unflatten(a, [H, W]))\n", head)) == ["E404"]  # W is not H*W


def test_every_independent_error_is_reported():
    e = err("let a = sum(yhat, axis=D)\nlet b = yhat + nope\nlet c = clip(yhat, 0.0)\nloss = mean(a + b + c)\n")
    assert codes(e) == ["E405", "E201", "E501"]


def test_dim_value_types():
    assert Dim("H").plus(-1) == Dim("H", -1)
    assert str(Dim("H", -1)) == "H - 1"


def _let_chain(n: int, step: str) -> str:
    lines = ["pred x: float[B]", "let a0 = x"]
    lines += [f"let a{i} = " + step.format(p=f"a{i - 1}") for i in range(1, n)]
    return "\n".join(lines + [f"loss = mean(a{n - 1})"]) + "\n"


def test_a_long_chain_of_lets_is_checked_without_recursing_down_it():
    # 1,000 lets, each reading the one before: no RecursionError, no warning to give.
    m = check_ok(_let_chain(1000, "{p} * 0.5 + 1.0"))
    assert m.warnings == []


def test_a_chain_of_guarded_lets_is_checked_in_linear_time_and_each_guard_still_counts():
    # Each `where` refines the let before it; every log is guarded, so nothing is warned about,
    # and refinements that cannot reach a node do not multiply the walks over it.
    m = check_ok(_let_chain(300, "where({p} > 0.0, log({p}), 0.0)"))
    assert m.warnings == []
    # Without its guard the same chain warns once per log.
    m = check_ok(_let_chain(30, "log({p})"))
    assert [w.code for w in m.warnings] == ["W701"] * 29


def test_many_independently_guarded_terms_each_keep_their_own_guard():
    # 200 terms, each a log guarded by its own `where`, summed: the refinement of one term's
    # value reaches its branch and the sum above it, and guards nothing else. One log of the
    # same value outside its `where` still warns, once.
    lines = ["pred x: float[B]"]
    for k in range(200):
        lines += [f"let a{k} = x + {k}.0", f"let t{k} = where(a{k} > 0.0, log(a{k}), 0.0)"]
    total = " + ".join(f"t{k}" for k in range(200))
    m = check_ok("\n".join(lines + [f"loss = mean({total})"]) + "\n")
    assert m.warnings == []
    m = check_ok("\n".join(lines + [f"loss = mean({total} + log(a7))"]) + "\n")
    assert [(w.code, w.span.line) for w in m.warnings] == [("W701", 402)]
