"""Which metrics a PromQL expression reads, without a PromQL parser: enough to check that
every dashboard panel and alert of the chart (charts/kuberds/monitoring/) selects only
metrics kuberds exports.

The scanner walks the expression once. Strings, comments, label matchers and the brackets of
ranges and subqueries are skipped whole (only `{__name__="x"}` and Prometheus 3's quoted
`{"x"}` name a metric there); numbers and durations are skipped; a word followed by `(` is a
function or an aggregation; the label lists after by/without/on/ignoring/group_left/
group_right are skipped; what is left of the words, keywords aside, are metric names.
Grafana's template variables ($var, ${var}, [[var]]) and its variable queries
(label_values(...), query_result(...)) are understood too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Binary operators, modifiers and literals spelled as words (the lexer matches them in any case).
KEYWORDS = frozenset({"and", "or", "unless", "atan2", "bool", "offset", "inf", "nan"})
# Aggregations are keywords too: `sum by (job) (x)` has no `(` right after `sum`.
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile", "limitk", "limit_ratio"})  # fmt: skip
# Keywords followed by a parenthesised list of label names.
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:[0-9]*\.)?[0-9]+(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_]*")
VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\w+)")
MATCHER_OPERATOR = re.compile(r"\s*(=~|!~|!=|=)\s*")
PAIRS = {"(": ")", "[": "]", "{": "}"}
# Grafana's Prometheus variable queries that hold an expression: label_values(EXPR, label),
# query_result(EXPR). label_values(label), label_names() and metrics(regex) hold none.
GRAFANA_QUERY = re.compile(r"^\s*(label_values|query_result|label_names|metrics)\s*\((.*)\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The names of the metrics `expr` selects (regular-expression name matchers name none)."""
    inner = grafana_expression(expr)
    if inner is not None:
        return metric_names(inner) if inner else set()
    names: set[str] = set()
    i = 0
    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c == "#":
            newline = expr.find("\n", i)
            i = len(expr) if newline < 0 else newline + 1
        elif c in "\"'`":
            i = _end_of_string(expr, i)
        elif c == "{":
            end = _closing(expr, i)
            names |= _names_in_matchers(expr[i + 1 : end])
            i = end + 1
        elif c == "[":
            i = _closing(expr, i) + 1
        elif c == "$":
            found = VARIABLE.match(expr, i)
            i = found.end() if found else i + 1
        elif c.isdigit() or (c == "." and expr[i + 1 : i + 2].isdigit()):
            i = NUMBER.match(expr, i).end()
        elif found := WORD.match(expr, i):
            word, i = found.group(), found.end()
            after = _next_visible(expr, i)
            lower = word.lower()
            if lower in LABEL_LISTS:
                if after < len(expr) and expr[after] == "(":
                    i = _closing(expr, after) + 1
            elif lower in KEYWORDS or lower in AGGREGATIONS:
                continue
            elif after < len(expr) and expr[after] == "(":
                continue  # a function
            else:
                names.add(word)
        else:
            i += 1
    return names


def grafana_expression(query: str) -> str | None:
    """The PromQL inside a Grafana variable query ("" when it holds none), or None when
    `query` is plain PromQL."""
    found = GRAFANA_QUERY.match(query)
    if not found:
        return None
    function, arguments = found.groups()
    if function == "query_result":
        return arguments
    if function == "label_values":
        parts = list(_split_top_level(arguments))
        return parts[0] if len(parts) == 2 else ""
    return ""


def queries_of_dashboard(model: dict) -> list[str]:
    """Every query of a Grafana dashboard model: its panels' targets (rows' panels too) and
    its query variables (as Grafana writes them: label_values(...) and the like)."""
    queries = []
    for panel in _panels(model.get("panels", [])):
        queries += [t["expr"] for t in panel.get("targets", []) if isinstance(t.get("expr"), str) and t["expr"]]
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query.strip():
            queries.append(query)
    return queries


def expressions_of_rules(rules: dict) -> list[str]:
    """The expression of every alerting and recording rule of a Prometheus rules file (or of
    a PrometheusRule's spec: the same `groups`)."""
    return [str(rule["expr"]) for group in rules.get("groups", []) for rule in group.get("rules", [])]


# Series Prometheus writes itself for every target it scrapes: no pod serves them.
SCRAPE_SERIES = frozenset({"up"})


def recorded_names(rules: dict) -> set[str]:
    """The metric names a rules file's recording rules make (expressions may read them)."""
    return {rule["record"] for group in rules.get("groups", []) for rule in group.get("rules", []) if "record" in rule}


# ---------------------------------------------------------------- scanning


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels


def _next_visible(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _end_of_string(text: str, start: int) -> int:
    """The index after the string literal opened at `start` (backquoted ones have no escapes)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string at {start}: {text!r}")


def _closing(text: str, start: int) -> int:
    """The index of the bracket closing the one at `start` (strings and nesting respected)."""
    stack, i = [PAIRS[text[start]]], start + 1
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            i = _end_of_string(text, i)
            continue
        if c in PAIRS:
            stack.append(PAIRS[c])
        elif c in ")]}":
            if c != stack.pop():
                raise ValueError(f"mismatched {c!r} at {i}: {text!r}")
            if not stack:
                return i
        i += 1
    raise ValueError(f"unclosed {text[start]!r} at {start}: {text!r}")


def _split_top_level(text: str) -> Iterator[str]:
    """`text` split at the commas outside brackets and strings, each part stripped."""
    begin, i = 0, 0
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            i = _end_of_string(text, i)
            continue
        if c in PAIRS:
            i = _closing(text, i) + 1
            continue
        if c == ",":
            yield text[begin:i].strip()
            begin = i + 1
        i += 1
    if text[begin:].strip():
        yield text[begin:].strip()


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal[0] == "`" else re.sub(r"\\(.)", r"\1", body)


def _names_in_matchers(inside: str) -> set[str]:
    """Metric names given inside braces: __name__="x", or a lone quoted "x" (Prometheus 3)."""
    names = set()
    for matcher in _split_top_level(inside):
        if matcher[:1] in "\"'`":
            end = _end_of_string(matcher, 0)
            label, rest = _unquote(matcher[:end]), matcher[end:]
            if not rest.strip():
                names.add(label)
                continue
        else:
            found = WORD.match(matcher)
            if not found:
                continue
            label, rest = found.group(), matcher[found.end() :]
        operator = MATCHER_OPERATOR.match(rest)
        value = rest[operator.end() :].strip() if operator else ""
        if label == "__name__" and operator and operator.group(1) == "=" and value[:1] in "\"'`" and value:
            names.add(_unquote(value))
    return names
