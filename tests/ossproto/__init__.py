"""The pieces of tests/ossserver.py, one concern each.

``wire``: OSS errors, constants, XML replies and header parsing. ``signing``: V1 and V4 signature checks.
``store``: objects and multipart uploads as files on disk. ``handlers``: the aiohttp server (``OssServer``).
"""
