"""The JSON-RPC methods: each one a thin adapter from params to one application-layer operation."""

from __future__ import annotations

from typing import Any

from .machinery import Call, Param, openrpc_document, rpc

PATHS = Param("paths", "paths", "absolute paths of the files to upload, inside the allowed folders")
PROFILE = Param("profile", "string", "storage profile name; the default profile when omitted", required=False)
TASK_ID = Param("task_id", "string", "a task id from upload_images")
OPT_TASK_ID = Param("task_id", "string", "a task id; every task when omitted", required=False)


@rpc("upload_images", "Queue files for upload as one batch; returns at once with a task per file, in input order.",
     '{"batch_id", "tasks": [Task]}', PATHS, PROFILE)
async def upload_images(call: Call, p: dict[str, Any]) -> Any:
    # The profile is judged first, so a bad profile name is a config error even when a path is also bad.
    return (await call.app.submit_paths(call.client, p["paths"], profile=p["profile"])).to_json(lazy=True)


@rpc("upload_images_batch", "Like upload_images, with at most batch_size files of this batch in flight at once.",
     '{"batch_id", "tasks": [Task]}', PATHS,
     Param("batch_size", "integer", "files of this batch in flight at once", required=False, default=5, minimum=1,
           maximum=100), PROFILE)
async def upload_images_batch(call: Call, p: dict[str, Any]) -> Any:
    return (await call.app.submit_paths(call.client, p["paths"], profile=p["profile"],
                                        batch_size=p["batch_size"])).to_json(lazy=True)


@rpc("upload_urls", "Fetch images from http(s) URLs and upload them as one batch; loopback and private "
     "addresses are refused unless [security] allow_private_urls.", '{"batch_id", "tasks": [Task]}',
     Param("urls", "urls", "http:// or https:// URLs of images"), PROFILE,
     Param("batch_size", "integer", "files of this batch in flight at once", required=False, minimum=1,
           maximum=100))
async def upload_urls(call: Call, p: dict[str, Any]) -> Any:
    return (await call.app.submit_urls(call.client, p["urls"], profile=p["profile"],
                                       batch_size=p["batch_size"])).to_json(lazy=True)


@rpc("create_upload_urls", "Signed URLs an app PUTs files to itself (S3, OSS; the local store: the daemon's own "
     "one-time URL), per file in input order; limits are checked before anything is signed.",
     '{"uploads": [{"name", "key", "url", "method", "headers", "expires_at"} | {"name", "error"}]}',
     Param("files", "list", "[{name, size, content_type}, ...]: what the app will send"), PROFILE)
async def create_upload_urls(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.presigned.create(p["files"], p["profile"])


@rpc("confirm_uploads", "Check that presigned uploads arrived whole, and record them in the history with links.",
     '{"results": [{"key", "status": "confirmed" | "missing" | "mismatch", "url"?, "message"}]}',
     Param("keys", "list", "the keys create_upload_urls gave"), PROFILE)
async def confirm_uploads(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.presigned.confirm(p["keys"], p["profile"])


@rpc("get_upload_progress", "One task's progress.", "Task", TASK_ID)
async def get_upload_progress(call: Call, p: dict[str, Any]) -> Any:
    await call.app.fresh_links()
    return call.app.task(p["task_id"]).to_json()


@rpc("get_all_upload_progress", "Every listed task (or one batch's) and a summary; with since, only the tasks "
     "changed after that version and the ids removed since.",
     '{"tasks": [Task], "summary": Summary, "version": int, "removed"?: [str], "full"?: true}',
     Param("batch_id", "string", "only this batch's tasks", required=False),
     Param("since", "integer", "a version from an earlier read: only what changed after it", required=False,
           minimum=0, maximum=2**62))
async def get_all_upload_progress(call: Call, p: dict[str, Any]) -> Any:
    await call.app.fresh_links()
    return call.app.progress(p["batch_id"], p["since"]).to_json(incremental=p["since"] is not None, lazy=True)


@rpc("cancel_upload", "Cancel a queued, uploading or paused task; a started multipart upload is aborted.", "Task",
     TASK_ID)
async def cancel_upload(call: Call, p: dict[str, Any]) -> Any:
    return call.app.cancel(p["task_id"]).to_json()


@rpc("retry_upload", "Queue a failed or cancelled task again, under the same task_id.", "Task", TASK_ID)
async def retry_upload(call: Call, p: dict[str, Any]) -> Any:
    return call.app.retry(p["task_id"]).to_json()


@rpc("retry_failed", "Queue every failed task (of one batch, or all) again; files that can no longer be sent stay "
     "failed and are listed with the reason.", '{"retried": int, "skipped": [{"task_id", "name", "reason"}]}',
     Param("batch_id", "string", "only this batch's failed tasks", required=False))
async def retry_failed(call: Call, p: dict[str, Any]) -> Any:
    return call.app.retry_failed(p["batch_id"])


@rpc("clear_upload_progress", "Remove finished tasks (completed, failed, cancelled) from the list; history keeps "
     "every link.", '{"cleared": int}')
async def clear_upload_progress(call: Call, p: dict[str, Any]) -> Any:
    return {"cleared": call.app.clear()}


@rpc("pause_upload", "Pause one task, or everything queued and uploading. Finished multipart parts are kept.",
     '{"paused": int}', OPT_TASK_ID)
async def pause_upload(call: Call, p: dict[str, Any]) -> Any:
    return {"paused": call.app.pause(p["task_id"])}


@rpc("resume_upload", "Resume one paused task, or every paused task; multipart uploads continue from their last "
     "whole part.", '{"resumed": int}', OPT_TASK_ID)
async def resume_upload(call: Call, p: dict[str, Any]) -> Any:
    return {"resumed": call.app.resume(p["task_id"])}


@rpc("get_upload_history", "Every uploaded link, newest first; kept across restarts.",
     '{"items": [{"history_id", "task_id", "name", "url", "size", "profile", "key", "uploaded_at", '
     '"deleted_at", "url_expires_at"}], "total": int}',
     Param("limit", "integer", "items per page", required=False, default=50, minimum=1, maximum=1000),
     Param("offset", "integer", "items to skip", required=False, default=0, minimum=0, maximum=10**9),
     Param("query", "string", "only names containing this text", required=False),
     Param("deleted", "boolean", "true: only uploads deleted from their store; false: only those still there",
           required=False))
async def get_upload_history(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.history_now(p["limit"], p["offset"], p["query"], p["deleted"])


@rpc("delete_upload", "Delete an uploaded file from its store, and mark every history entry that points to it.",
     '{"deleted": true, "name", "profile", "key", "deleted_at"}',
     Param("task_id", "string", "the upload's task id", required=False),
     Param("history_id", "integer", "the upload's history_id (from get_upload_history)", required=False,
           minimum=1, maximum=2**62))
async def delete_upload(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.delete_upload(p["task_id"], p["history_id"])


@rpc("list_profiles", "The storage profiles (never their secrets) and which is the default.",
     '{"default": str, "profiles": [{"name", "provider", "bucket", "endpoint", ...}]}')
async def list_profiles(call: Call, p: dict[str, Any]) -> Any:
    return call.app.profiles.listing()


@rpc("list_provider_kinds", "The storage providers pixlift supports and the settings each one takes (for a "
     "settings form).", '{"kinds": [{"provider", "label", "legend", "fields": [{"name", "label", "input", '
     '"secret", "placeholder", "choices"}]}]}')
async def list_provider_kinds(call: Call, p: dict[str, Any]) -> Any:
    return call.app.profiles.kinds()


@rpc("check_profile", "Test a profile's connection and credentials; says exactly what is wrong.",
     '{"profile", "ok": bool, "message"}', PROFILE)
async def check_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.profiles.check(p["profile"])


@rpc("get_daemon_info", "Version, pid, limits and profile names of the running daemon.", "object")
async def get_daemon_info(call: Call, p: dict[str, Any]) -> Any:
    return call.app.describe()


@rpc("rpc.discover", "This API described as an OpenRPC document.", "OpenRPC document")
async def discover(call: Call, p: dict[str, Any]) -> Any:
    return openrpc_document()


PROFILE_NAME = Param("name", "string", "the profile's name: 1 to 64 letters, digits, '-' or '_'")
PROFILE_FIELDS = Param("profile", "object", 'the profile\'s settings as in config.toml, e.g. {"provider": "s3", '
                       '"bucket": "photos", ...}; a secret field left out or empty keeps the saved secret')
PROFILE_LIST = '{"default": str, "profiles": [...]} as list_profiles'


@rpc("save_profile", "Add a storage profile or replace one's settings in config.toml (checked first, its connection "
     "tested, written atomically, in force at once). Secret fields left out or empty keep the saved secret. A "
     "profile whose connection test fails is saved only with force.", PROFILE_LIST, PROFILE_NAME, PROFILE_FIELDS,
     Param("force", "boolean", "save even when the connection test fails", required=False, default=False))
async def save_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.profiles.save(p["name"], p["profile"], force=p["force"])


@rpc("delete_profile", "Delete a storage profile from config.toml. The default profile, the last profile and a "
     "profile that active uploads use cannot be deleted.", PROFILE_LIST, PROFILE_NAME)
async def delete_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.profiles.delete(p["name"])


@rpc("set_default_profile", "Make a profile the default (storage.default in config.toml).", PROFILE_LIST,
     PROFILE_NAME)
async def set_default_profile(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.profiles.set_default(p["name"])


@rpc("check_profile_draft", "Test settings for a profile before saving them (as save_profile would store them); "
     "writes nothing.", '{"profile", "ok": bool, "message"}', PROFILE_NAME, PROFILE_FIELDS)
async def check_profile_draft(call: Call, p: dict[str, Any]) -> Any:
    return await call.app.profiles.check_draft(p["name"], p["profile"])




INTEGRATIONS = ('{"picgo_server", "picgo_port", "picgo_key_set", "picgo_origins", "picgo_listening", '
                '"picgo_error"}')


@rpc("get_integrations", "The [integrations] settings in force (the PicGo-compatible server for Typora and "
     "Obsidian) and whether that server listens.", INTEGRATIONS)
async def get_integrations(call: Call, p: dict[str, Any]) -> Any:
    return call.app.integrations.view()


@rpc("save_integrations", "Change [integrations] in config.toml (checked first, in force at once: the PicGo-"
     "compatible server starts, moves or stops before this answers). Params left out keep their value.",
     INTEGRATIONS,
     Param("picgo_server", "boolean", "serve PicGo's POST /upload on 127.0.0.1:picgo_port", required=False),
     Param("picgo_port", "integer", "its port (PicGo's is 36677)", required=False, minimum=1024, maximum=65535),
     Param("picgo_key", "string", "a key editors must then send as ?key= (8 characters or more)", required=False),
     Param("remove_picgo_key", "boolean", "drop the key: editors call without one", required=False, default=False))
async def save_integrations(call: Call, p: dict[str, Any]) -> Any:
    fields: dict[str, Any] = {k: p[k] for k in ("picgo_server", "picgo_port", "picgo_key") if p[k] is not None}
    if p["remove_picgo_key"]:
        fields["picgo_key"] = None
    return await call.app.integrations.save(fields)
