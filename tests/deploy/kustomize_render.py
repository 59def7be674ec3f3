"""A small kustomize renderer: exactly the features ``deploy/`` uses, for machines without
``kustomize`` or ``kubectl kustomize``.

Supported ``kustomization.yaml`` fields: ``resources`` (files and directories holding a
kustomization), ``patches`` (``path`` or inline ``patch``, optional ``target``) as a
strategic-merge patch (a Kubernetes object: maps merge, ``null`` deletes a key, lists of
containers/env/ports/volumes... merge by their key, other lists are replaced) or a JSON 6902
patch (a list of ``add``/``replace``/``remove`` operations, with a ``target``). Any other field
raises ``NotImplementedError``, so ``deploy/`` cannot silently outgrow the renderer; where
``kubectl`` exists, ``test_deploy_k8s.py`` checks this renderer's output against it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

#: Lists that strategic merge merges item by item, and the key that identifies an item.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}
SUPPORTED = {"apiVersion", "kind", "resources", "patches"}


def load_yaml_docs(path: Path) -> list[Obj]:
    """Every non-empty YAML document of ``path``."""
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def render(directory: Path) -> list[Obj]:
    """The objects ``kustomize build directory`` would print (in resource order)."""
    kfile = directory / "kustomization.yaml"
    k = yaml.safe_load(kfile.read_text())
    unknown = set(k) - SUPPORTED
    if unknown:
        raise NotImplementedError(f"{kfile}: fields {sorted(unknown)} are not supported by this renderer")
    objects: list[Obj] = []
    for res in k.get("resources", []):
        p = (directory / res).resolve()
        objects.extend(render(p) if p.is_dir() else load_yaml_docs(p))
    for patch in k.get("patches", []):
        text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
        body = yaml.safe_load(text)
        if isinstance(body, list):
            if "target" not in patch:
                raise ValueError(f"{kfile}: a JSON 6902 patch needs a target")
            targets = [o for o in objects if _matches(o, patch["target"])]
            for o in targets:
                apply_json6902(o, body)
        else:
            target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
            targets = [o for o in objects if _matches(o, target)]
            for i, o in enumerate(objects):
                if any(o is t for t in targets):
                    objects[i] = strategic_merge(o, body)
        if not targets:
            raise ValueError(f"{kfile}: patch {patch} matches no object")
    return objects


def _matches(obj: Obj, target: dict[str, str]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    checks = {
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "group": group,
        "version": version,
        "namespace": obj["metadata"].get("namespace", ""),
    }
    for key, want in target.items():
        if key not in checks:
            raise NotImplementedError(f"patch target field {key!r} is not supported")
        if checks[key] != want:
            return False
    return True


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into ``base`` (new object; neither argument changes)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        by_key = {item[key]: item for item in base}
        patched = [strategic_merge(by_key[p[key]], p) if p[key] in by_key else copy.deepcopy(p) for p in patch]
        seen = {p[key] for p in patch}
        # kustomize's order: the patch's items first, then the base's other items
        return patched + [copy.deepcopy(item) for item in base if item[key] not in seen]
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_json6902(obj: Obj, ops: list[Obj]) -> None:
    """Apply JSON 6902 ``add``/``replace``/``remove`` operations to ``obj`` in place."""
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if isinstance(node, list):
            if kind == "add":
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
                continue
            idx = int(last)
            if idx >= len(node):
                raise ValueError(f"{op['path']}: index out of range")
        elif kind != "add" and last not in node:
            raise ValueError(f"{op['path']}: no such member to {kind}")
        if kind in ("add", "replace"):
            node[int(last) if isinstance(node, list) else last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise NotImplementedError(f"JSON 6902 op {kind!r} is not supported")
