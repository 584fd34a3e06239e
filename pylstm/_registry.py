"""Finding the class a saved config names (layers, optimizers), written once."""
from __future__ import annotations

from typing import Any


def class_from_config(config: Any, kind: str, registry: dict[str, type],
                      custom_objects: dict[str, Any] | None) -> tuple[type, dict[str, Any]]:
    """The class ``config["class_name"]`` names (custom ones first) and the other entries as kwargs.

    Raises
    ------
    ValueError
        ``config`` is not a config dict, or names a class that is neither built in nor in ``custom_objects``.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"not {kind} config: {config!r:.200}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or registry.get(name)
    if cls is None:
        raise ValueError(f"unknown {kind.split()[-1]} class {name!r}; known: {', '.join(sorted(registry))} "
                         "(pass custom ones through custom_objects)")
    return cls, {k: v for k, v in config.items() if k != "class_name"}
