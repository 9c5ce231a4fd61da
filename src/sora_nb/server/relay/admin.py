"""The teacher's view of a relay: ``GET /admin`` (a page), ``GET /admin/usage`` (its rows, as JSON, for
``sora_nb.relay_usage``) and ``GET /admin/posters/{video_id}`` (a video's thumbnail), the last two for admins.

The page holds no data: its script asks for the admin token (or reads it from ``#token=`` in the address, which
browsers never send to the server) and fetches the rows and posters with it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sora_nb.server.context import Context
from sora_nb.server.errors import ApiError
from sora_nb.server.relay.service import ADMIN_PAGE, Relay, relay_of, user_of
from sora_nb.server.store import Store


def admin_routes() -> list[Route]:
    """The teacher's paths."""
    return [
        Route(ADMIN_PAGE, page, methods=["GET"]),
        Route("/admin/usage", usage, methods=["GET"]),
        Route("/admin/posters/{video_id:path}", poster, methods=["GET"]),
    ]


def _admin(request: Request) -> None:
    if not user_of(request).admin:
        raise ApiError(
            403,
            "This is the teacher's view; use a token made with `sora-nb users add NAME --admin`.",
            code="admin_only",
        )


def usage_rows(relay: Relay, store: Store) -> dict[str, Any]:
    """Each user's spend, budget and videos (newest first, with their status), and the class's totals."""
    rows = relay.storage.videos()
    by_user: dict[str, list[dict[str, Any]]] = {}
    for row in reversed(rows):
        job = store.get(row.id)
        state = store.state(job) if job else None
        done = state is not None and state.status == "completed"
        by_user.setdefault(row.user, []).append(
            {
                "id": row.id,
                "status": state.status if state else "missing",
                "prompt": job.prompt if job else "",
                "model": job.model if job else "",
                "size": f"{job.width}x{job.height}" if job else "",
                "seconds": job.seconds if job else 0,
                "charge": row.charge,
                "hit": row.hit,
                "created_at": row.created_at,
                "error": dict(state.error) if state and state.error else None,
                "poster": f"/admin/posters/{quote(row.id, safe='')}" if done else None,
            }
        )
    users = []
    for user in relay.storage.users():
        own = by_user.get(user.name, [])
        count = {s: sum(v["status"] == s for v in own) for s in ("completed", "failed", "queued", "in_progress")}
        users.append(
            {
                "name": user.name,
                "admin": user.admin,
                "budget": user.budget,
                "spent": user.spent,
                "remaining": user.remaining,
                "jobs": len(own),
                "completed": count["completed"],
                "failed": count["failed"],
                "running": count["queued"] + count["in_progress"],
                "hits": sum(v["hit"] for v in own),
                "videos": own,
            }
        )
    return {
        "object": "relay.usage",
        "users": users,
        "spent": round(sum(u["spent"] for u in users), 6),
        "upstream_jobs": len({row.upstream_key for row in rows}),
        "shared": relay.config.share,
    }


async def usage(request: Request) -> Response:
    """GET /admin/usage: :func:`usage_rows` as JSON (admins only)."""
    _admin(request)
    return JSONResponse(usage_rows(relay_of(request), Context.of(request).store))


async def poster(request: Request) -> Response:
    """GET /admin/posters/{video_id}: a completed video's thumbnail (admins only)."""
    _admin(request)
    ctx = Context.of(request)
    job = ctx.store.get(request.path_params["video_id"])
    path = ctx.store.asset(job, "thumbnail") if job else None
    if job is None or path is None or not path.is_file() or not path.stat().st_size:
        raise ApiError(404, "No poster for this video (yet).", code="asset_missing")
    return await ctx.assets.serve(request, job, "thumbnail")


async def page(request: Request) -> Response:
    """GET /admin: the teacher's page."""
    return HTMLResponse(PAGE, headers={"cache-control": "no-store", "referrer-policy": "no-referrer"})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Class relay</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#1d2327;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 .2rem}.sub{color:#555;margin:0 0 1rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e3e3;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f2f4;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
.over{color:#b32d2e;font-weight:600}.posters{display:flex;flex-wrap:wrap;gap:.35rem}
.posters figure{margin:0;width:96px}.posters img{width:96px;height:54px;object-fit:cover;border-radius:3px;
background:#ddd}.posters figcaption{font-size:11px;color:#555;overflow:hidden;white-space:nowrap;
text-overflow:ellipsis}.hit{color:#2271b1}#login{display:none;gap:.5rem;margin-bottom:1rem}
#error{color:#b32d2e}
</style></head><body>
<h1>Class relay</h1><p class="sub" id="summary">Loading&hellip;</p>
<form id="login"><input id="token" type="password" placeholder="admin token" size="48" autocomplete="off">
<button>Open</button></form><p id="error" role="alert"></p>
<table id="usage" hidden><thead><tr><th>Student</th><th class="num">Spent</th><th class="num">Budget</th>
<th class="num">Left</th><th class="num">Jobs</th><th class="num">Done</th><th class="num">Running</th>
<th class="num">Failed</th><th class="num">Shared</th><th>Videos</th></tr></thead><tbody></tbody></table>
<script>
function takeHash() {  // #token=... : kept for this tab only, and taken out of the address bar at once
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("relayToken", fromHash); history.replaceState(null, "", location.pathname); }
}
const money = (v) => v === null ? "no limit" : "$" + v.toFixed(2);
const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = text;
  if (cls) td.className = cls; return td; };
async function poster(url, img, token) {
  const r = await fetch(url, {headers: {Authorization: "Bearer " + token}});
  if (r.ok) img.src = URL.createObjectURL(await r.blob());
}
async function load() {
  const token = sessionStorage.getItem("relayToken");
  const login = document.getElementById("login");
  if (!token) { login.style.display = "flex"; document.getElementById("summary").textContent =
    "Give the admin token that `sora-nb users add NAME --admin` printed."; return; }
  const r = await fetch("/admin/usage", {headers: {Authorization: "Bearer " + token}});
  const body = await r.json();
  if (!r.ok) { sessionStorage.removeItem("relayToken"); login.style.display = "flex";
    document.getElementById("error").textContent = body.error ? body.error.message : "HTTP " + r.status; return; }
  document.getElementById("summary").textContent = `${body.users.length} users, ${money(body.spent)} spent, ` +
    `${body.upstream_jobs} upstream jobs` + (body.shared ? " (identical requests shared)" : " (sharing off)");
  const tbody = document.querySelector("#usage tbody"); tbody.replaceChildren();
  for (const u of body.users) {
    const tr = document.createElement("tr"); tr.dataset.user = u.name;
    tr.append(cell(u.name + (u.admin ? " (admin)" : "")), cell(money(u.spent), "num"), cell(money(u.budget), "num"),
      cell(u.remaining === null ? "" : money(u.remaining), "num" + (u.remaining === 0 ? " over" : "")),
      cell(u.jobs, "num"), cell(u.completed, "num"), cell(u.running, "num"), cell(u.failed, "num"),
      cell(u.hits, "num hit"));
    const td = document.createElement("td"); const box = document.createElement("div"); box.className = "posters";
    for (const v of u.videos) {
      const fig = document.createElement("figure"); const img = document.createElement("img");
      img.alt = v.prompt; img.title = `${v.prompt} (${v.status}${v.hit ? ", shared" : ""})`;
      const cap = document.createElement("figcaption");
      cap.textContent = v.status === "completed" ? v.prompt : v.status;
      fig.append(img, cap); box.append(fig);
      if (v.poster) poster(v.poster, img, token);
    }
    td.append(box); tr.append(td); tbody.append(tr);
  }
  document.getElementById("usage").hidden = false;
}
document.getElementById("login").addEventListener("submit", (e) => { e.preventDefault();
  sessionStorage.setItem("relayToken", document.getElementById("token").value.trim());
  document.getElementById("error").textContent = "";
  document.getElementById("login").style.display = "none"; load(); });
window.addEventListener("hashchange", () => { takeHash(); document.getElementById("error").textContent = "";
  document.getElementById("login").style.display = "none"; load(); });
takeHash(); load();
</script></body></html>
"""
