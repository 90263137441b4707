"""The ``pixlift`` command: serve, upload, watch, retry, status, open, config, token, history, delete."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import webbrowser
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..client import Client, DaemonNotRunning, RpcError
from ..errors import PATH_REFUSED, ClipboardError, ConfigError
from ..files.paths import sniff_image
from ..intake import clipboard
from ..settings.home import Home
from ..settings.links import lifetime_of
from .history import FORMATS, cmd_delete, cmd_history
from .progress import Board


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixlift", description="Upload images to OSS, S3 or a local folder "
                                     "through a local daemon, with byte-accurate progress.")
    parser.add_argument("--version", action="version", version=f"pixlift {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the daemon in the foreground")
    p.add_argument("--port", type=port_number, default=36690,
                   help="port on 127.0.0.1 (0 picks a free one); default 36690")
    p.add_argument("--no-tray", action="store_true", help="no tray icon (servers, containers, CI)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    p = sub.add_parser("upload", help="upload files (or the clipboard's image) and print their links")
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--clipboard", action="store_true", help="upload the image on the clipboard (a screenshot)")
    p.add_argument("--copy", action="store_true", help="put the links on the clipboard too")
    p.add_argument("--profile", help="storage profile (default: the configured default)")
    p.add_argument("--batch-size", type=int, default=None, help="files in flight at once for this upload (1-100)")
    p.add_argument("--format", choices=sorted(FORMATS), default="url", help="how to print each link")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on the terminal")

    p = sub.add_parser("retry", help="queue failed uploads again")
    p.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="tasks to retry (failed or cancelled)")
    p.add_argument("--failed", action="store_true", help="every failed upload (of --batch, if given)")
    p.add_argument("--batch", metavar="BATCH_ID", help="with --failed: only this batch")

    p = sub.add_parser("watch", help="follow a batch (or every upload) live until it is done")
    p.add_argument("batch_id", nargs="?", metavar="BATCH_ID", help="a batch id (from upload_images or the UI)")

    sub.add_parser("status", help="is the daemon running, and what is it doing")
    p = sub.add_parser("open", help="open the web UI in the browser, logged in")
    p.add_argument("--print", action="store_true", help="print the login link instead of opening a browser")

    p = sub.add_parser("config", help="check or locate the configuration")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("check", help="validate config.toml and test each profile's connection")
    c.add_argument("--profile", help="only this profile")
    csub.add_parser("path", help="print the path of config.toml")

    p = sub.add_parser("token", help="print the API token's file, or replace the token")
    p.add_argument("--rotate", action="store_true", help="replace the token (browser sessions must log in again)")

    p = sub.add_parser("history", help="the most recent uploaded links")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--format", choices=sorted(FORMATS), default="url")

    p = sub.add_parser("delete", help="delete uploaded files from their store (by link or task id)")
    p.add_argument("targets", nargs="+", metavar="URL|TASK_ID", help="a link pixlift gave, or an upload's task id")

    args = parser.parse_args(argv)
    home = Home.locate()
    try:
        return COMMANDS[args.command](home, args)
    except DaemonNotRunning as exc:
        print(f"pixlift: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"pixlift: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except RpcError as exc:
        print(f"pixlift: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def port_number(text: str) -> int:
    """--port: a whole number from 0 to 65535 (argparse prints the refusal as a one-line usage error)."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a whole number from 0 to 65535")
    return int(text)


def cmd_serve(home: Home, args: argparse.Namespace) -> int:
    """Run the daemon: the CLI only reads the arguments; ``serve`` loads the settings and starts it."""
    from ..serve import serve  # the daemon's modules (SDKs, aiohttp's server) load only for this command

    return serve(home, port=args.port, log_level=args.log_level, tray=not args.no_tray)


def cmd_upload(home: Home, args: argparse.Namespace) -> int:
    client = Client.from_home(home)
    if args.clipboard:
        if args.files:
            print("pixlift: give files or --clipboard, not both", file=sys.stderr)
            return 2
        try:
            image = clipboard.read_image()
        except ClipboardError as exc:
            print(f"pixlift: {exc.message}", file=sys.stderr)
            return 2
        sent = client.upload_bytes(image.name(), image.data, profile=args.profile, clipboard=True)
        return _follow(client, args, sent["batch_id"], [sent["task"]["task_id"]])
    urls = [f for f in args.files if f.startswith(("http://", "https://"))]
    if urls:
        if len(urls) != len(args.files):
            print("pixlift: give files or URLs, not both in one command", file=sys.stderr)
            return 2
        return _queue(client, args, "URLs", "url", "upload_urls", urls=urls, profile=args.profile,
                      batch_size=args.batch_size)
    paths = expand(args.files)
    if not paths:
        print("pixlift: no images to upload" + (" in " + " ".join(args.files) if args.files else
                                                 ": name files, or give --clipboard"), file=sys.stderr)
        return 2
    if args.batch_size is not None:
        return _queue(client, args, "files", "path", "upload_images_batch", paths=paths, batch_size=args.batch_size,
                      profile=args.profile)
    return _queue(client, args, "files", "path", "upload_images", paths=paths, profile=args.profile)


def _queue(client: Client, args: argparse.Namespace, what: str, field: str, method: str, **params: Any) -> int:
    """Queue a batch and follow it; when the daemon refuses it (-32001), every refused item is listed."""
    try:
        started = client.call(method, **params)
    except RpcError as exc:
        if exc.code == PATH_REFUSED and isinstance(exc.data, list):
            print(f"pixlift: nothing was uploaded; these {what} were refused:", file=sys.stderr)
            for item in exc.data:
                print(f"  {item[field]}: {item['reason']}", file=sys.stderr)
            return 2
        raise
    return _follow(client, args, started["batch_id"], [t["task_id"] for t in started["tasks"]])


def _follow(client: Client, args: argparse.Namespace, batch_id: str, order: list[str]) -> int:
    """Progress on the terminal (stderr) until the batch is done; then the links on stdout, in input order."""
    board = Board(sys.stderr, show=sys.stderr.isatty() and not args.quiet, order=order)
    for event in client.watch(batch_id):
        board.apply(event)
        s = board.summary
        if event["event"] == "progress" and s.get("paused") and not (s.get("queued") or s.get("uploading")):
            board.finish()
            print("pixlift: uploads are paused; resume them from the UI, the tray or resume_upload.", file=sys.stderr)
            return 4
    board.finish()
    state = client.call("get_all_upload_progress", batch_id=batch_id)
    by_id = {t["task_id"]: t for t in state["tasks"]}
    failed = 0
    links = []
    for tid in order:
        t = by_id[tid]
        if t["status"] == "completed":
            links.append(FORMATS[args.format].format(url=t["url"], name=t["name"]))
        else:
            failed += 1
            reason = (t.get("error") or {}).get("message") or t["status"]
            print(f"pixlift: {t['path'] or t['name']}: {t['status']}: {reason}", file=sys.stderr)
    for link in links:  # last, on stdout alone: what Typora's custom command reads
        print(link)
    if args.copy and links:
        try:
            clipboard.copy_text("\n".join(links))
        except ClipboardError as exc:
            print(f"pixlift: uploaded, but the link could not be copied: {exc.message}", file=sys.stderr)
            return 1
    return 1 if failed else 0


def cmd_retry(home: Home, args: argparse.Namespace) -> int:
    if not args.failed and not args.task_ids:
        print("pixlift: name the tasks to retry, or give --failed for every failed upload.", file=sys.stderr)
        return 2
    client = Client.from_home(home)
    bad = 0
    if args.failed:
        result = client.call("retry_failed", batch_id=args.batch)
        print(f"retried {result['retried']} failed upload{'s' if result['retried'] != 1 else ''}")
        for item in result["skipped"]:
            bad += 1
            print(f"pixlift: {item['name']}: not retried: {item['reason']}", file=sys.stderr)
    for task_id in args.task_ids:
        try:
            task = client.call("retry_upload", task_id=task_id)
            print(f"retrying {task['name']}")
        except RpcError as exc:
            bad += 1
            print(f"pixlift: {task_id}: {exc.message}", file=sys.stderr)
    return 1 if bad else 0


def cmd_watch(home: Home, args: argparse.Namespace) -> int:
    """Follow a batch (or everything) live: a line on stdout as each file finishes, progress on stderr."""
    client = Client.from_home(home)
    board = Board(sys.stderr, show=sys.stderr.isatty())
    failed = 0
    for event in client.watch(args.batch_id):
        board.apply(event)
        if event["event"] == "task":
            t = event["data"]
            if t["status"] == "completed":
                print(f"completed  {t['name']}  {t['url']}", flush=True)
            else:
                failed += t["status"] == "failed"
                reason = (t.get("error") or {}).get("message") or ""
                print(f"{t['status']:<10} {t['name']}" + (f"  {reason}" if reason else ""), flush=True)
        elif event["event"] == "batch" and not args.batch_id:
            s = event["data"]["summary"]
            print(f"batch {event['data']['batch_id']} done: {s['completed']} completed, {s['failed']} failed, "
                  f"{s['cancelled']} cancelled", flush=True)
    board.finish()
    return 1 if failed else 0


def expand(args: list[str]) -> list[str]:
    """Absolute paths; a folder stands for the images inside it (recursively, in name order, hidden ones left out).

    Files named one by one go to the daemon as they are, so that it can say why one is refused; inside a
    folder, files that are not images by their bytes are skipped with a note."""
    out: list[str] = []
    for arg in args:
        path = os.path.abspath(os.path.expanduser(arg))
        if not os.path.isdir(path):
            out.append(path)
            continue
        found, skipped = [], 0
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                full = os.path.join(folder, name)
                if name.startswith(".") or not os.path.isfile(full):
                    continue
                try:
                    with open(full, "rb") as fh:
                        is_image = sniff_image(fh.read(1024)) is not None
                except OSError:
                    is_image = True  # let the daemon say why it cannot be read
                if is_image:
                    found.append(full)
                else:
                    skipped += 1
        if skipped:
            noun = "files that are not images" if skipped > 1 else "file that is not an image"
            print(f"pixlift: {arg}: skipped {skipped} {noun}", file=sys.stderr)
        out.extend(found)
    return out


def cmd_status(home: Home, args: argparse.Namespace) -> int:
    client = Client.from_home(home)
    info = client.call("get_daemon_info")
    s = client.call("get_all_upload_progress")["summary"]
    print(f"pixlift {info['version']} running at {client.url} (pid {info['pid']})")
    print(f"default profile: {info['default_profile']}; profiles: {', '.join(info['profiles'])}")
    print(f"tasks: {s['total']} listed, {s['uploading']} uploading, {s['queued']} queued, {s['paused']} paused, "
          f"{s['completed']} completed, {s['failed']} failed, {s['cancelled']} cancelled")
    return 0


def cmd_open(home: Home, args: argparse.Namespace) -> int:
    url = Client.from_home(home).login_url()
    if args.print or not webbrowser.open(url):
        print(url)
    return 0


def cmd_config(home: Home, args: argparse.Namespace) -> int:
    from ..settings.config_file import load_settings

    if args.action == "path":
        print(home.config)
        return 0
    settings = load_settings(home.config, home.root)
    where = home.config if home.config.exists() else f"{home.config} (absent: using the embedded default)"
    print(f"config: {where}: valid")
    names = [args.profile] if args.profile else list(settings.profiles)
    for name in names:
        settings.profile(name)
    from ..settings.profiles import check_offline

    bad = 0
    for result in asyncio.run(check_offline(settings, home.files, names)):
        name = result["profile"]
        mark = "ok  " if result["ok"] else "FAIL"
        default = " (default)" if name == settings.default_profile else ""
        print(f"  {mark} {name}{default}: {result['message']}")
        bad += not result["ok"]
        lifetime = lifetime_of(settings.profiles.get(name))
        if lifetime is not None:
            print(f"       links are presigned and each works for {_span(lifetime)}; pixlift signs them again when "
                  "they are read through it (the UI, the API, the history). For links meant to be shared widely, "
                  f"set public_base_url in [profiles.{name}].")
    return 1 if bad else 0


def _span(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = round(seconds / size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def cmd_token(home: Home, args: argparse.Namespace) -> int:
    home.ensure()
    if args.rotate:
        home.rotate_token()
        print(f"new token written to {home.token_file}; a running daemon uses it at once. Open the UI again with "
              "'pixlift open'.")
    else:
        home.ensure_token()
        print(home.token_file)
    return 0


COMMANDS: dict[str, Callable[[Home, argparse.Namespace], int]] = {
    "serve": cmd_serve, "upload": cmd_upload, "watch": cmd_watch, "retry": cmd_retry, "status": cmd_status,
    "open": cmd_open, "config": cmd_config, "token": cmd_token, "history": cmd_history, "delete": cmd_delete,
}
