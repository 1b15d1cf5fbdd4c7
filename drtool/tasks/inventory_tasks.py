"""`inv inventory.*`: validate inventories and import k3s-ansible ones."""
from __future__ import annotations

from invoke import task

from drtool.tasks._cli import bad_arg, guarded, read_only


@task(help={"file": "inventory file to validate"})
@guarded
@read_only()
def check(c, file):
    """Validate an inventory file; print a summary or one line naming the bad field (exit 2)."""
    from drtool.inventory import load_inventory

    inv = load_inventory(file)
    roles = ", ".join(f"{n.name} ({n.role})" for n in inv.nodes)
    print(f"{file}: ok: cluster {inv.cluster.name}, nodes {roles}, k3s {inv.k3s.version}, flux {inv.flux.version}")


@task(name="import-ansible", help={"file": "k3s-ansible inventory.yml", "output": "write here instead of stdout"})
@guarded
@read_only("output")
def import_ansible(c, file, output=None):
    """Convert a k3s-ansible inventory.yml into a drtool inventory (the token is never copied)."""
    import sys
    from pathlib import Path

    import yaml

    from drtool.errors import BadInput
    from drtool.inventory import parse_inventory
    from drtool.inventory_import import convert_ansible

    try:
        data = yaml.safe_load(Path(file).read_text())
    except FileNotFoundError:
        raise BadInput(file, "", "file not found") from None
    except yaml.YAMLError as exc:
        raise BadInput(file, "", f"invalid YAML: {getattr(exc, 'problem', exc)}") from None
    converted, notes = convert_ansible(data, file)
    parse_inventory(converted, output or "<converted>")  # what we write must load
    text = yaml.safe_dump(converted, sort_keys=False)
    if output:
        if Path(output).exists():
            raise bad_arg("--output", f"{output} exists; refusing to overwrite")
        Path(output).write_text(text)
        print(f"wrote {output}")
    else:
        sys.stdout.write(text)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
