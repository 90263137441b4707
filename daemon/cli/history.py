"""``pixlift history`` and ``pixlift delete``: the uploaded links, and taking one back from its store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..client import Client, RpcError
from ..errors import NOT_FOUND
from ..settings.home import Home

FORMATS = {
    "url": "{url}",
    "markdown": "![{name}]({url})",
    "html": '<img src="{url}" alt="{name}">',
}


def cmd_history(home: Home, args: argparse.Namespace) -> int:
    client = Client.from_home(home)
    result = client.call("get_upload_history", limit=args.limit)
    for item in result["items"]:
        print(FORMATS[args.format].format(url=item["url"], name=item["name"]))
    return 0


def cmd_delete(home: Home, args: argparse.Namespace) -> int:
    client = Client.from_home(home)
    failed = 0
    for target in args.targets:
        try:
            if target.startswith(("http://", "https://")):
                entry = _history_entry(client, target)
                if entry is None:
                    raise RpcError(NOT_FOUND, f"no upload in the history has the link {target}")
                done = client.call("delete_upload", history_id=entry["history_id"])
            else:
                done = client.call("delete_upload", task_id=target)
        except RpcError as exc:
            failed += 1
            print(f"pixlift: {target}: {exc.message}", file=sys.stderr)
            continue
        print(f"deleted {done['name']} from {done['profile']} ({done['key']})")
    return 1 if failed else 0


def _history_entry(client: Client, url: str) -> dict[str, Any] | None:
    """The history entry a link belongs to; a presigned link matches whatever its signature (the query)."""
    bare = url.split("?", 1)[0]
    offset = 0
    while True:
        page = client.call("get_upload_history", limit=1000, offset=offset, deleted=False)
        for item in page["items"]:
            if item["url"] == url or item["url"].split("?", 1)[0] == bare:
                return dict(item)
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return None
