"""The HTTP face on localhost: the security gate, JSON-RPC over HTTP and WebSocket, Server-Sent Events, the web
UI's routes and files, and the PicGo-compatible server for editors.

Holds: ``gate`` (Host, Origin, token and session checks before any handler), ``web`` (``Routes``: /rpc, the UI,
/files/ and /local/, browser uploads), ``rpc`` (the JSON-RPC machinery and every method, registered as data),
``push`` (event streams a client follows), ``web_push`` (/events and /ws), ``picgo`` (the editors' server).
May import: application, core, errors, files, intake, pixlift.
Used by: the composition root (``app``) only. It stands beside the CLI and the tray and imports neither.
"""
