"""Bicep's deploy-time-constant rules, checked on the tree-sitter-bicep syntax tree (no Bicep compiler needed).

ARM must know some values before it creates anything: the collection of every for-expression (property loops
included, BCP178), resource and module names (BCP120), `if` conditions (BCP177), scopes and the names of
`existing` resources. Those may not reach, directly or through variables, a resource's runtime state (anything
but `id`, `name`, `type` and `apiVersion`: `.properties`, a whole resource object), a module's `.outputs`,
`reference()` or a `list*()` call. The Bicep compiler refuses such a template; `az deployment group create`
then stops before creating anything. Without a compiler on these machines, tests/infra/test_bicep_lint.py runs this
on every .bicep file under infra/, main.bicep and its modules alike.

Modules. Each file is checked on its own, as the compiler checks it: inside a module its own `param`s are
deploy-time constants (a module is a nested deployment, whose parameters are set when it starts). On top of that,
which the compiler does not ask, a file that declares a module must pass a deploy-time constant to every parameter
the module uses where one is needed (a name, a loop's collection, a condition, a scope, an `existing` name; followed
through the module's variables and through the modules it declares in turn): those are the parameters holding the
names main.bicep computes. A module output or a runtime property handed to such a parameter would compile, but the
name would only be known once the nested deployment starts, so `az deployment group what-if` (deploy.sh --what-if)
could not say what it creates, and the rule that names and loops are known at the start would hold file by file
only. Such a finding has the code `module-param`; a module file that does not exist, `module`.

    .venv-checkov/bin/python infra/bicep_lint.py infra/main.bicep infra/modules/*.bicep   # one line per finding
    .venv-checkov/bin/python infra/bicep_lint.py --json infra/main.bicep                  # the findings as JSON

Needs tree-sitter and tree-sitter-bicep (infra/requirements-checks.txt, installed in .venv-checkov).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
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
        self.params: set[str] = set()
        self.vars: dict[str, Node] = {}
        self.resources: set[str] = set()
        self.modules: set[str] = set()
        self.declarations: list[Node] = []
        self._collect(self.root)
        self._var_cause: dict[str, list[str] | None] = {}
        self._var_params: dict[str, set[str]] = {}
        self._constant_params: set[str] | None = None

    def _collect(self, node: Node) -> None:
        for child in node.named_children:
            if child.type == "parameter_declaration":
                self.params.add(_text(child.named_children[0]))
            elif child.type == "variable_declaration":
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

    # --- Which parameters an expression reads ------------------------------------------------------------------

    def params_in(self, node: Node, bound: frozenset[str]) -> set[str]:
        """The file's parameters the expression reads, directly or through variables."""
        t = node.type
        if t == "identifier":
            name = _text(node)
            if name in bound:
                return set()
            if name in self.vars:
                if name not in self._var_params:
                    self._var_params[name] = set()  # a cycle is Bicep's own error (BCP079)
                    self._var_params[name] = self.params_in(self.vars[name], frozenset())
                return self._var_params[name]
            return {name} if name in self.params else set()
        if t == "for_statement":
            names, collection, body = _for_parts(node)
            return self.params_in(collection, bound) | self.params_in(body, bound | names)
        if t == "lambda_expression":
            kids = node.named_children
            return self.params_in(kids[-1], bound | {_text(k) for k in kids[:-1] if k.type == "identifier"})
        if t == "object_property":  # the key is a name, not a reference
            return self.params_in(_value(node), bound) if node.named_children else set()
        kids = node.named_children
        if t == "call_expression" and kids and kids[0].type == "identifier":  # the function's name
            kids = kids[1:]
        return set().union(*(self.params_in(k, bound) for k in kids))

    def constant_params(self) -> set[str]:
        """The parameters this file uses where a deploy-time constant is needed: whoever declares it as a module
        must pass constants to those."""
        if self._constant_params is None:
            self._constant_params = set()  # modules that declare each other in a cycle: Bicep's error (BCP095)
            self._constant_params = set().union(
                *(self.params_in(node, bound) for _, _, node, bound in self._required()))
        return self._constant_params

    # --- Where a deploy-time constant is required -------------------------------------------------------------

    def _required(self) -> Iterator[tuple[str, str, Node, frozenset[str]]]:
        """(where, code, expression, loop variables in scope) of every expression that must be a deploy-time
        constant."""

        def loops(node: Node, bound: frozenset[str]) -> Iterator[tuple[str, str, Node, frozenset[str]]]:
            if node.type == "for_statement":
                names, collection, body = _for_parts(node)
                yield "the collection of a for-expression", "BCP178", collection, bound
                yield from loops(collection, bound)
                yield from loops(body, bound | names)
                return
            for child in node.named_children:
                yield from loops(child, bound)

        yield from loops(self.root, frozenset())
        for decl in self.declarations:
            symbol = _text(decl.named_children[0])
            collection, condition, body = _body(decl)
            bound = frozenset(_for_parts(decl.named_children[-1])[0]) if collection is not None else frozenset()
            if condition is not None:
                yield f"the condition of {symbol}", "BCP177", condition, bound
            if body is None:
                continue
            props = _properties(body)
            if "name" in props:
                yield f"the name of {symbol}", "BCP120", props["name"], bound
            scope = props.get("scope")
            if scope is not None and not self._is_symbol_reference(scope):
                yield f"the scope of {symbol}", "BCP120", scope, bound
            module = self.module(decl)
            if module is not None and props.get("params") is not None and props["params"].type == "object":
                constant = module.constant_params()
                for name, value in _properties(props["params"]).items():
                    if name in constant:
                        yield (f"the param {name} of module {symbol} ({_module_source(decl)} uses it where a "
                               "deploy-time constant is needed)", "module-param", value, bound)

    def module(self, decl: Node) -> Lint | None:
        """The Lint of the file a module declaration names, or None (not a module, or not a local file)."""
        if decl.type != "module_declaration":
            return None
        path = Path(self.path).parent / _module_source(decl)
        return _lint_of(path) if path.is_file() else None

    def findings(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []

        def report(where: str, code: str, node: Node, cause: list[str] | None) -> None:
            if cause:
                out.append({"file": self.path, "line": node.start_point[0] + 1, "where": where, "code": code,
                            "expression": " ".join(_text(node).split())[:120], "reaches": cause})

        if self.root.has_error:
            # A tree with errors hides declarations: say so rather than pass what could not be read.
            report("the file", "syntax", self.root, ["a syntax error tree-sitter-bicep cannot read"])
            return out
        for where, code, node, bound in self._required():
            report(where, code, node, self.cause(node, bound))
        for decl in self.declarations:
            source = _module_source(decl) if decl.type == "module_declaration" else None
            if source is not None and not source.startswith(("br:", "br/", "ts:", "ts/")) \
                    and not (Path(self.path).parent / source).is_file():
                report(f"the module {_text(decl.named_children[0])}", "module", decl.named_children[1],
                       [f"{source}: no such file"])
        return sorted(out, key=lambda f: (f["file"], f["line"]))

    def _is_symbol_reference(self, node: Node) -> bool:
        # `scope: storage` or `scope: lakeReaders[i]` passes a resource reference, which ARM knows up front.
        while node.type == "subscript_expression":
            node = node.named_children[0]
        return node.type == "identifier" and _text(node) in self.resources | self.modules


def _module_source(decl: Node) -> str:
    """The path a module declaration names, as written."""
    return "".join(_text(c) for c in decl.named_children[1].named_children)


_LINTS: dict[Path, Lint] = {}


def _lint_of(path: Path) -> Lint:
    key = path.resolve()
    if key not in _LINTS:
        _LINTS[key] = Lint(str(path), path.read_bytes())
    return _LINTS[key]


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
