"""The import graph of the source tree (stdlib `ast`) and the house rules on layers checked over it."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the rules look at: everything that ships, runs locally, benchmarks or deploys.
SOURCES = ("chalicelib", "local", "bench", "infra", "app.py")

DOMAIN = "chalicelib.domain"
# The domain's third-party dependencies: pydantic, and the ISO reference tables its rules read (pure data,
# no I/O: ISO 3166 countries, ISO 4217 currencies with their minor units).
DOMAIN_LIBRARIES = frozenset({"pydantic", "pydantic_core", "iso3166", "iso4217"})
# What an entrypoint may import besides the standard library: the composition root hands it the rest.
ENTRYPOINT_ALLOWED = (
    "chalicelib.domain",
    "chalicelib.composition",
    "chalicelib.observability",
    "chalicelib.settings",
    "chalicelib.resources",
    "chalicelib.entrypoints",
    "chalice",
    # Powertools' batch processor is how an SQS handler reports partial failures (STYLE.md).
    "aws_lambda_powertools",
)


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module
    target: str  # the imported module (resolved: `from a import b` is `a.b` when b is a module)
    name: str | None  # the imported name when it is not a module (`from a import name`)
    line: int

    def __str__(self) -> str:
        shown = f"{self.target}.{self.name}" if self.name else self.target
        return f"{self.importer}:{self.line} imports {shown}"


@dataclass(frozen=True)
class PrivateUse:
    module: str
    owner: str
    name: str
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} uses private {self.owner}.{self.name}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, sources: Iterable[str] = SOURCES) -> dict[str, Path]:
    """Module name → file, for every Python file under the given top-level folders and files."""
    found: dict[str, Path] = {}
    for entry in sources:
        path = root / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            # Generated and installed code is not the project's: cdk.out, and any dot-folder (.venv,
            # .chalice, .mypy_cache) such as the CDK toolchain's infra/.venv.
            inside = file.relative_to(root).parts
            if "cdk.out" in inside or "__pycache__" in inside or any(p.startswith(".") for p in inside):
                continue
            found[module_name(file, root)] = file
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Reader(ast.NodeVisitor):
    """Every import of one module (at any depth: inside functions too) and its uses of private names."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.imports: list[Import] = []
        self.private: list[PrivateUse] = []
        self.module_aliases: dict[str, str] = {}  # local name → module it is bound to

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append(Import(self.module, alias.name, None, node.lineno))
            if alias.asname:
                self.module_aliases[alias.asname] = alias.name
            else:
                head = alias.name.split(".")[0]
                self.module_aliases[head] = head
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self._absolute(node)
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in self.known:
                self.imports.append(Import(self.module, submodule, None, node.lineno))
                self.module_aliases[alias.asname or alias.name] = submodule
                continue
            self.imports.append(Import(self.module, source, alias.name, node.lineno))
            if is_private(alias.name) and source != "__future__":
                self.private.append(PrivateUse(self.module, source, alias.name, node.lineno))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = _dotted(node.value)
        if owner is not None and is_private(node.attr):
            head, _, rest = owner.partition(".")
            bound = self.module_aliases.get(head)
            if bound is not None:
                target = f"{bound}.{rest}" if rest else bound
                if target != self.module:
                    self.private.append(PrivateUse(self.module, target, node.attr, node.lineno))
        self.generic_visit(node)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


@dataclass
class Tree:
    files: dict[str, Path]
    imports: list[Import]
    private: list[PrivateUse]

    @classmethod
    def read(cls, root: Path = ROOT, sources: Iterable[str] = SOURCES) -> Tree:
        files = source_files(root, sources)
        known = set(files)
        imports: list[Import] = []
        private: list[PrivateUse] = []
        for module, path in files.items():
            reader = _Reader(module, path.name == "__init__.py", known)
            reader.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            imports += reader.imports
            private += reader.private
        return cls(files, imports, private)

    def from_(self, prefix: str) -> Iterator[Import]:
        return (i for i in self.imports if within(i.importer, prefix))


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def is_stdlib(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] in sys.stdlib_module_names


# --- the rules ------------------------------------------------------------------------------------------


def domain_violations(tree: Tree) -> list[Import]:
    """The domain imports only the standard library, pydantic and other domain modules."""
    return [
        i
        for i in tree.from_(DOMAIN)
        if not (within(i.target, DOMAIN) or is_stdlib(i.target) or i.target.split(".")[0] in DOMAIN_LIBRARIES)
    ]


def entrypoint_violations(tree: Tree, exceptions: Iterable[tuple[str, str]] = ()) -> list[Import]:
    """Entrypoints get adapters and vendor clients from the composition root, never import them.
    `exceptions`: (entrypoint module, imported module prefix) pairs excused for now."""
    excused = list(exceptions)
    return [
        i
        for i in tree.from_("chalicelib.entrypoints")
        if not any(i.importer == module and within(i.target, prefix) for module, prefix in excused)
        and not (is_stdlib(i.target) or any(within(i.target, allowed) for allowed in ENTRYPOINT_ALLOWED))
    ]


def private_violations(tree: Tree) -> list[PrivateUse]:
    """No module reaches into another's private names (`from x import _y`, `x._y`)."""
    return [p for p in tree.private if p.owner != p.module]


def cycles(tree: Tree, package: str = "chalicelib") -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (function-level imports count)."""
    graph: dict[str, set[str]] = {m: set() for m in tree.files if within(m, package)}
    for i in tree.imports:
        if i.importer in graph and i.target in graph and i.target != i.importer:
            graph[i.importer].add(i.target)
    return [sorted(group) for group in _strongly_connected(graph) if len(group) > 1]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a deep tree)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
    return groups
