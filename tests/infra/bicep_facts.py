"""Facts of the Bicep files for tests/infra, as JSON on stdout. Runs under .venv-checkov/bin/python, which has
pycep-parser and tree-sitter-bicep (infra/requirements-checks.txt); tests/infra/facts.py runs it on every .bicep
file under infra/.

    .venv-checkov/bin/python tests/infra/bicep_facts.py infra/main.bicep infra/modules/*.bicep

Parses each file with pycep and tree-sitter-bicep and reports syntax errors, then reads every file's parameters,
variables, resources (role assignments apart), `existing` references and module declarations off the tree-sitter
syntax tree, and merges them: the tests ask where a fact is, not which file holds it. Each resource, reference and
module says its `file`, relative to main.bicep's folder; `params` are main.bicep's (the deployment's parameters),
`module_params` every other file's; variable names are unique across the files (`conflicts` lists any that are not).
"""

import json
import sys
from pathlib import Path

import pycep
import tree_sitter_bicep
from tree_sitter import Language, Parser

parser = Parser(Language(tree_sitter_bicep.language()))


def text(node):
    return node.text.decode()


def first_error(node):
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        found = first_error(child)
        if found is not None:
            return found
    return None


def value(node):
    t = node.type
    if t == "string":
        if any(c.type == "interpolation" for c in node.named_children):
            return {"kind": "expr", "text": text(node)}
        return {"kind": "string", "value": "".join(text(c) for c in node.named_children if c.type != "interpolation")
                if node.named_children else "", "text": text(node)}
    if t == "number":
        return {"kind": "number", "value": text(node), "text": text(node)}
    if t == "boolean":
        return {"kind": "bool", "value": text(node), "text": text(node)}
    if t == "identifier":
        return {"kind": "identifier", "value": text(node), "text": text(node)}
    if t == "object":
        props = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            key, val = prop.named_children[0], prop.named_children[-1]
            name = text(key)
            if key.type == "string":
                name = "".join(text(c) for c in key.named_children)
            props[name] = value(val)
        return {"kind": "object", "value": props, "text": text(node)}
    if t == "array":
        return {"kind": "array", "value": [value(c) for c in node.named_children], "text": text(node)}
    return {"kind": "expr", "text": text(node)}


def decorators(node):
    found = {}
    for dec in (node.named_children if node is not None else []):
        call = dec.named_children[0]
        if call.type == "call_expression":
            args = call.named_children[1].named_children
            found[text(call.named_children[0])] = [value(a) for a in args]
    return found


def body_of(node):
    """(loop collection text, condition text, body value) of a resource or module declaration's last child."""
    loop = text(node.named_children[1]) if node.type == "for_statement" else None
    inner = node.named_children[-1] if loop else node
    condition = None
    if inner.type == "if_statement":
        condition, inner = text(inner.named_children[0]), inner.named_children[-1]
    return loop, condition, value(inner)


def read(path, rel, root, out):
    tree = parser.parse(path.read_bytes())
    main = path.name == "main.bicep"
    params = out["params"] if main else out["module_params"].setdefault(rel, {})
    pending = None
    for node in tree.root_node.named_children:
        kids = node.named_children
        if node.type == "decorators":
            pending = node
            continue
        decs, pending = decorators(pending), None
        if node.type == "parameter_declaration":
            default = value(kids[-1]) if len(kids) >= 3 else None
            params[text(kids[0])] = {"default": default, "decorators": decs}
        elif node.type == "variable_declaration":
            name = text(kids[0])
            if name in out["vars"]:
                out["conflicts"].append(f"var {name}: in {out['var_files'][name]} and {rel}")
            out["vars"][name] = value(kids[-1])
            out["var_files"][name] = rel
        elif node.type == "resource_declaration":
            rtype = text(kids[1]).strip("'")
            loop, condition, body = body_of(kids[-1])
            if any(c.type == "existing" for c in node.children):
                out["existing"].append({"symbol": text(kids[0]), "type": rtype, "body": body, "file": rel})
                continue
            out["resources"].append({"symbol": text(kids[0]), "type": rtype, "loop_over": loop,
                                     "condition": condition, "body": body, "file": rel})
            if rtype.startswith("Microsoft.Authorization/roleAssignments@") and body["kind"] == "object":
                props = body["value"]
                inner = props.get("properties", {}).get("value", {})
                out["role_assignments"].append({
                    "symbol": text(kids[0]),
                    "loop_over": loop,
                    "scope": props.get("scope", {}).get("text"),
                    "roleDefinitionId": inner.get("roleDefinitionId", {}).get("text"),
                    "principalId": inner.get("principalId", {}).get("text"),
                    "principalType": inner.get("principalType", {}).get("text"),
                    "file": rel,
                })
        elif node.type == "module_declaration":
            source = "".join(text(c) for c in kids[1].named_children)
            target = (path.parent / source).resolve()
            loop, condition, body = body_of(kids[-1])
            out["modules"].append({"symbol": text(kids[0]), "source": source, "loop_over": loop,
                                   "condition": condition, "body": body, "file": rel,
                                   "path": target.relative_to(root).as_posix()
                                   if target.is_relative_to(root) else str(target)})


def main(paths):
    out = {"files": {}, "params": {}, "module_params": {}, "vars": {}, "var_files": {}, "resources": [],
           "existing": [], "role_assignments": [], "modules": [], "conflicts": []}
    mains = [p.resolve().parent for p in paths if p.name == "main.bicep"]
    root = mains[0] if mains else Path.cwd()
    for path in paths:
        src = path.read_bytes()
        entry = {"pycep_error": None, "tree_sitter_error": None}
        try:
            pycep.BicepParser().parse(file_path=path)
        except Exception as exc:
            entry["pycep_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        err = first_error(parser.parse(src).root_node)
        if err is not None:
            entry["tree_sitter_error"] = f"line {err.start_point[0] + 1}, column {err.start_point[1] + 1}: " \
                                         f"{src[err.start_byte:err.start_byte + 60].decode(errors='replace')!r}"
        out["files"][str(path)] = entry
        if err is None:
            resolved = path.resolve()
            rel = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)
            read(path, rel, root, out)
    print(json.dumps(out))


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
