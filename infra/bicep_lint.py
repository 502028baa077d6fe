"""Bicep's deploy-time-constant rules, checked on the tree-sitter-bicep syntax tree (no Bicep compiler needed).

ARM must know some values before it creates anything: the collection of every for-expression (property loops
included, BCP178), resource and module names (BCP120), `if` conditions (BCP177), scopes and the names of
`existing` resources. Those may not reach, directly or through variables, a resource's runtime state (anything
but `id`, `name`, `type` and `apiVersion`: `.properties`, a whole resource object), a module's `.outputs`,
`reference()` or a `list*()` call. The Bicep compiler refuses such a template; `az deployment group create`
then stops before creating anything. Without a compiler on these machines, tests/infra/test_bicep_lint.py runs this.

    .venv-checkov/bin/python infra/bicep_lint.py infra/main.bicep          # one line per finding, exit 1
    .venv-checkov/bin/python infra/bicep_lint.py --json infra/main.bicep   # the findings as JSON

Needs tree-sitter and tree-sitter-bicep (infra/requirements-checks.txt, installed in .venv-checkov).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

# Members of a resource that ARM knows before the deployment starts (the Bicep compiler lists these in BCP120).
CONSTANT_RESOURCE_MEMBERS = {"id", "name", "type", "apiVersion"}
PARSER = Parser(Language(tree_sitter_bicep.language()))


def _text(node: Node) -> str:
    return node.text.decode()


def _value(prop: Node) -> Node:
    return prop.named_children[-1]


def _body(decl: Node) -> tuple[Node | None, Node | None, Node | None]:
    """(loop collection, condition, object) of a resource or module declaration."""
    node = decl.named_children[-1]
    collection = condition = None
    if node.type == "for_statement":
        collection, node = _for_parts(node)[1:]
    if node.type == "if_statement":
        condition = node.named_children[0]
        node = node.named_children[-1]
    return collection, condition, node if node.type == "object" else None


def _for_parts(node: Node) -> tuple[set[str], Node, Node]:
    """(loop variable names, collection, body) of a for_statement."""
    names: set[str] = set()
    kids = node.named_children
    first = kids[0]
    if first.type == "for_loop_parameters":
        names = {_text(c) for c in first.named_children}
    else:
        names = {_text(first)}
    return names, kids[1], kids[-1]


def _properties(obj: Node) -> dict[str, Node]:
    out = {}
    for prop in obj.named_children:
        if prop.type == "object_property" and prop.named_children:
            out[_text(prop.named_children[0]).strip("'")] = _value(prop)
    return out


class Lint:
    def __init__(self, path: str, src: bytes) -> None:
        self.path = path
        self.root = PARSER.parse(src).root_node
        self.vars: dict[str, Node] = {}
        self.resources: set[str] = set()
        self.modules: set[str] = set()
        self.declarations: list[Node] = []
        self._collect(self.root)
        self._var_cause: dict[str, list[str] | None] = {}

    def _collect(self, node: Node) -> None:
        for child in node.named_children:
            if child.type == "variable_declaration":
                self.vars[_text(child.named_children[0])] = child.named_children[-1]
            elif child.type == "resource_declaration":
                self.resources.add(_text(child.named_children[0]))
                self.declarations.append(child)
            elif child.type == "module_declaration":
                self.modules.add(_text(child.named_children[0]))
                self.declarations.append(child)
            self._collect(child)

    # --- What makes an expression a runtime value -------------------------------------------------------------

    def var_cause(self, name: str) -> list[str] | None:
        if name not in self._var_cause:
            self._var_cause[name] = None  # a cycle is Bicep's own error (BCP079), not ours
            cause = self.cause(self.vars[name], frozenset())
            self._var_cause[name] = [f"var {name}", *cause] if cause else None
        return self._var_cause[name]

    def cause(self, node: Node, bound: frozenset[str]) -> list[str] | None:
        """Why the expression is not known at the start of the deployment (a chain ending in the runtime value),
        or None when it is."""
        t = node.type
        if t == "identifier":
            name = _text(node)
            if name in bound:
                return None
            if name in self.resources or name in self.modules:
                return [f"{name} (the whole object, runtime state included)"]
            if name in self.vars:
                return self.var_cause(name)
            return None
        if t == "member_expression":
            root, members = node, []
            while root.type in ("member_expression", "subscript_expression"):
                if root.type == "member_expression":
                    members.insert(0, _text(root.named_children[-1]))
                else:
                    index = self.cause(root.named_children[-1], bound)
                    if index:
                        return index
                root = root.named_children[0]
            if root.type == "identifier" and _text(root) not in bound:
                name = _text(root)
                if name in self.resources:
                    return None if members[0] in CONSTANT_RESOURCE_MEMBERS else [f"{name}.{members[0]}"]
                if name in self.modules:
                    return [f"{name}.outputs"] if members[0] == "outputs" else None
            return self.cause(root, bound)
        if t == "call_expression":
            function = node.named_children[0]
            if function.type == "identifier":
                name = _text(function)
                if name == "reference" or name.startswith("list"):
                    return [f"{name}()"]
            else:
                found = self.cause(function, bound)
                if found:
                    return found
            return self._first(node.named_children[1:], bound)
        if t == "for_statement":
            names, collection, body = _for_parts(node)
            return self.cause(collection, bound) or self.cause(body, bound | names)
        if t == "lambda_expression":
            kids = node.named_children
            return self.cause(kids[-1], bound | {_text(k) for k in kids[:-1] if k.type == "identifier"})
        if t == "object_property":
            return self.cause(_value(node), bound) if node.named_children else None
        return self._first(node.named_children, bound)

    def _first(self, nodes: list[Node], bound: frozenset[str]) -> list[str] | None:
        for child in nodes:
            found = self.cause(child, bound)
            if found:
                return found
        return None

    # --- Where a deploy-time constant is required -------------------------------------------------------------

    def findings(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []

        def report(where: str, code: str, node: Node, cause: list[str] | None) -> None:
            if cause:
                out.append({"file": self.path, "line": node.start_point[0] + 1, "where": where, "code": code,
                            "expression": " ".join(_text(node).split())[:120], "reaches": cause})

        def loops(node: Node, bound: frozenset[str]) -> None:
            if node.type == "for_statement":
                names, collection, body = _for_parts(node)
                report("the collection of a for-expression", "BCP178", collection,
                       self.cause(collection, bound))
                loops(collection, bound)
                loops(body, bound | names)
                return
            for child in node.named_children:
                loops(child, bound)

        if self.root.has_error:
            # A tree with errors hides declarations: say so rather than pass what could not be read.
            report("the file", "syntax", self.root, ["a syntax error tree-sitter-bicep cannot read"])
            return out
        loops(self.root, frozenset())
        for decl in self.declarations:
            symbol = _text(decl.named_children[0])
            collection, condition, body = _body(decl)
            bound = frozenset(_for_parts(decl.named_children[-1])[0]) if collection is not None else frozenset()
            if condition is not None:
                report(f"the condition of {symbol}", "BCP177", condition, self.cause(condition, bound))
            if body is None:
                continue
            props = _properties(body)
            if "name" in props:
                report(f"the name of {symbol}", "BCP120", props["name"], self.cause(props["name"], bound))
            scope = props.get("scope")
            if scope is not None and not self._is_symbol_reference(scope):
                report(f"the scope of {symbol}", "BCP120", scope, self.cause(scope, bound))
        return sorted(out, key=lambda f: (f["file"], f["line"]))

    def _is_symbol_reference(self, node: Node) -> bool:
        # `scope: storage` or `scope: lakeReaders[i]` passes a resource reference, which ARM knows up front.
        while node.type == "subscript_expression":
            node = node.named_children[0]
        return node.type == "identifier" and _text(node) in self.resources | self.modules


def lint(path: str, src: bytes) -> list[dict[str, object]]:
    return Lint(path, src).findings()


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    paths = [a for a in argv if a != "--json"]
    if not paths:
        print("usage: bicep_lint.py [--json] FILE.bicep...", file=sys.stderr)
        return 2
    found = [f for p in paths for f in lint(p, Path(p).read_bytes())]
    if as_json:
        print(json.dumps(found))
    else:
        for f in found:
            print(f"{f['file']}:{f['line']}: {f['code']}: {f['where']} must be known at the start of the "
                  f"deployment, but `{f['expression']}` reaches {' -> '.join(f['reaches'])}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
