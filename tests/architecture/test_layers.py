"""The house rules on layers (STYLE.md, docs/architecture.md), checked over the real source tree."""

from __future__ import annotations

from tests.architecture.imports import (
    Tree,
    cycles,
    domain_violations,
    entrypoint_violations,
    private_violations,
)

# Temporary exceptions: (entrypoint, imported module prefix) → why. Remove an entry as soon as it is not
# needed (a test below fails when one is no longer used).
ENTRYPOINT_EXCEPTIONS: dict[tuple[str, str], str] = {}

TREE = Tree.read()


def shown(found: list[object]) -> str:
    return "\n".join(str(f) for f in found)


def test_the_domain_imports_only_the_standard_library_pydantic_and_itself():
    found = domain_violations(TREE)
    assert not found, "domain/ must not depend on outer layers:\n" + shown(found)


def test_entrypoints_get_adapters_and_vendor_clients_from_the_composition_root():
    found = entrypoint_violations(TREE, exceptions=ENTRYPOINT_EXCEPTIONS)
    assert not found, "entrypoints must go through chalicelib.composition:\n" + shown(found)


def test_each_entrypoint_exception_is_still_needed():
    found = entrypoint_violations(TREE)
    unused = [
        pair
        for pair in ENTRYPOINT_EXCEPTIONS
        if not any(i.importer == pair[0] and i.target.startswith(pair[1]) for i in found)
    ]
    assert not unused, f"no longer needed, remove: {unused}"


def test_no_module_uses_another_modules_private_names():
    found = private_violations(TREE)
    assert not found, "private names are private to their module:\n" + shown(found)


def test_chalicelib_has_no_import_cycles():
    found = cycles(TREE)
    assert not found, "modules that import each other (share a third, or merge them):\n" + "\n".join(
        " <-> ".join(group) for group in found
    )
