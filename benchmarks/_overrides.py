"""Load a config with `--set models.coder.context_size=8192`-style overrides, without writing a file."""

from __future__ import annotations

import json

from ggroute.models.config import LoadedConfig, find_config, parse_config


def load_with_overrides(config: str | None, overrides: list[str]) -> LoadedConfig:
    path = find_config(config)
    data = json.loads(path.read_text(encoding="utf-8"))
    for item in overrides:
        dotted, _, raw = item.partition("=")
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        try:
            node[leaf] = json.loads(raw)
        except json.JSONDecodeError:
            node[leaf] = raw
    return parse_config(json.dumps(data), path)
