"""The image cache's two steps: export in the backup, give back before install/join.

Neither step ever fails the rebuild: an image that could not be kept (short disk, over
``images.max_bytes``, export failed) or given back (corrupt archive) is pulled from its
registry as it would be without the cache, and the report says which. Commands and the
facts they follow: ``drtool.remote.image_cache``.
"""
from __future__ import annotations

from drtool.errors import DrtoolError
from drtool.inventory import Node
from drtool.phases.context import Context
from drtool.remote import image_cache

KEPT = "images_kept"
REUSED = "images_reused"
IN_USE = "images_in_use"
"""State key: node name -> images its pods use, read from the old cluster by the backup (absent
when the API did not answer: then every tagged image is kept)."""


def export(ctx: Context) -> str:
    """Export every node's images (in parallel); returns ``; images kept: ...`` for the backup's message."""
    if not ctx.inv.images.keep:
        return "; images not kept (images.keep: false)"

    in_use = ctx.state.get(IN_USE)

    def one(node: Node) -> image_cache.Outcome:
        wanted = None if in_use is None else in_use.get(node.name, [])
        try:
            with ctx.step(node, "images"):
                res = ctx.runner.run(node, image_cache.export_command(ctx.inv, wanted), sudo=True, check=False,
                                     step="backup", timeout=ctx.deadline("backup"))
        except DrtoolError as exc:   # a dropped node keeps nothing; the wipe is not held up by the cache
            return image_cache.Outcome(notes=[f"export failed ({type(exc).__name__})"])
        out = image_cache.parse(res.stdout)
        if not res.ok:
            out.notes.append(f"export exited {res.exit_code}")
        return out

    results = ctx.runner.fan_out(ctx.inv.nodes, one).succeeded
    kept: dict[str, dict] = {}
    parts = []
    for node in ctx.inv.nodes:
        out = results.get(node.name)
        if out is None:
            parts.append(f"{node.name}: export failed")
            continue
        kept[node.name] = {"images": out.count("kept"), "bytes": out.bytes("kept"),
                           "not_kept": out.refs("short") + out.refs("over") + out.refs("failed")}
        text = f"{node.name}: {out.count('kept')} ({image_cache.human_bytes(out.bytes('kept'))})"
        if out.count("short"):
            text += f", disk short: {out.count('short')} left to pull"
            ctx.progress.print(f"    warning: {node.name}: less than {ctx.inv.images.min_free_bytes} bytes free for "
                               f"{ctx.inv.images.cache_dir}; {out.count('short')} image(s) will be pulled again")
        if out.count("over"):
            text += f", over images.max_bytes: {out.count('over')} left to pull"
        if out.count("failed"):
            text += f", export failed: {out.count('failed')}"
        if out.count("unused"):
            text += f", not used by any pod: {out.count('unused')} left out"
        if out.notes:
            text += f" ({'; '.join(out.notes)})"
        parts.append(text)
    ctx.state[KEPT] = kept
    which = "" if in_use is not None else " (every tagged image: the old cluster did not list its pods)"
    return f"; images kept: {'; '.join(parts)}{which}"


def give_back(ctx: Context, node: Node) -> None:
    """Place the node's verified archives in ``<data-dir>/agent/images/`` before K3s starts."""
    if not ctx.inv.images.keep or not (ctx.options.dry_run or node.name in (ctx.state.get(KEPT) or {})):
        return
    try:
        with ctx.step(node, "images"):
            # Its own step in commands.log, apart from the install it prepares.
            res = ctx.runner.run(node, image_cache.give_back_command(ctx.inv), sudo=True, check=False, step="images")
    except DrtoolError as exc:
        ctx.progress.print(f"    warning: {node.name}: kept images not given back ({type(exc).__name__}); they will be pulled")
        return
    out = image_cache.parse(res.stdout)
    wanted = (ctx.state.get(KEPT) or {}).get(node.name, {}).get("not_kept", [])
    ctx.state.setdefault(REUSED, {})[node.name] = {
        "images": out.count("reused"), "bytes": out.bytes("reused"),
        "pulled": sorted(set(out.refs("corrupt") + out.refs("failed") + list(wanted))),
        "corrupt": out.refs("corrupt")}
    for ref in out.refs("corrupt"):
        ctx.progress.print(f"    warning: {node.name}: cached archive of {ref} does not match its SHA-256; it will be pulled")


def note(ctx: Context, nodes) -> str:
    """``; images reused: node1 3 (1.2 GiB), pulled: x`` for the install/join message (or nothing)."""
    reused = ctx.state.get(REUSED) or {}
    parts = []
    for n in nodes:
        r = reused.get(n.name)
        if r is None:
            continue
        text = f"{n.name} {r['images']} ({image_cache.human_bytes(r['bytes'])})"
        if r["pulled"]:
            text += f", pulled instead: {', '.join(r['pulled'])}"
        parts.append(text)
    return f"; images reused: {'; '.join(parts)}" if parts else ""


def details(ctx: Context, nodes) -> dict:
    """Per node ``{images, bytes, pulled}`` for the phase's details (empty when nothing was given back)."""
    reused = ctx.state.get(REUSED) or {}
    return {n.name: reused[n.name] for n in nodes if n.name in reused}
