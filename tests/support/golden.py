"""Golden-file comparison: rendered objects vs reviewed YAML under version control.

Set HEADWAY_UPDATE_GOLDEN=1 to rewrite the files, then review the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


def dump_documents(objs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objs, Dumper=_NoAliasDumper, sort_keys=False, width=120)


def assert_golden(objs: list[dict[str, Any]], path: Path) -> None:
    text = dump_documents(objs)
    if os.environ.get("HEADWAY_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            raise AssertionError(f"golden file {path} is missing (run with HEADWAY_UPDATE_GOLDEN=1 and review it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    expected = list(yaml.safe_load_all(path.read_text()))
    assert objs == expected, f"rendered objects differ from {path}; if intended, rerun with HEADWAY_UPDATE_GOLDEN=1 and review"
