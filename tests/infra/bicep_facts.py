"""Facts of the Bicep files for tests/infra, as JSON on stdout. Runs under .venv-checkov/bin/python, which has
pycep-parser and tree-sitter-bicep (infra/requirements-checks.txt); tests/infra/facts.py runs it.

    .venv-checkov/bin/python tests/infra/bicep_facts.py infra/main.bicep

Parses each file with pycep and tree-sitter-bicep and reports syntax errors, then reads main.bicep's parameters,
variables and role assignments off the tree-sitter syntax tree.
"""
import json, sys
from pathlib import Path
import pycep
import tree_sitter_bicep
from tree_sitter import Language, Parser

parser = Parser(Language(tree_sitter_bicep.language()))
out = {"files": {}, "params": {}, "vars": {}, "role_assignments": [], "resources": []}

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

for path in map(Path, sys.argv[1:]):
    src = path.read_bytes()
    entry = {"pycep_error": None, "tree_sitter_error": None}
    try:
        pycep.BicepParser().parse(file_path=path)
    except Exception as exc:
        entry["pycep_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    tree = parser.parse(src)
    err = first_error(tree.root_node)
    if err is not None:
        entry["tree_sitter_error"] = f"line {err.start_point[0] + 1}, column {err.start_point[1] + 1}: " \
                                     f"{src[err.start_byte:err.start_byte + 60].decode(errors='replace')!r}"
    out["files"][str(path)] = entry
    if path.name != "main.bicep" or err is not None:
        continue
    pending = None
    for node in tree.root_node.named_children:
        kids = node.named_children
        if node.type == "decorators":
            pending = node
            continue
        decs, pending = decorators(pending), None
        if node.type == "parameter_declaration":
            default = value(kids[-1]) if len(kids) >= 3 else None
            out["params"][text(kids[0])] = {"default": default, "decorators": decs}
        elif node.type == "variable_declaration":
            out["vars"][text(kids[0])] = value(kids[-1])
        elif node.type == "resource_declaration":
            rtype = text(kids[1]).strip("'")
            body_node = kids[-1]
            loop = text(body_node.named_children[1]) if body_node.type == "for_statement" else None
            inner_node = body_node.named_children[-1] if loop else body_node
            condition = None
            if inner_node.type == "if_statement":
                condition, inner_node = text(inner_node.named_children[0]), inner_node.named_children[-1]
            body = value(inner_node)
            out["resources"].append({"symbol": text(kids[0]), "type": rtype, "loop_over": loop,
                                     "condition": condition, "body": body})
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
                })
print(json.dumps(out))
