"""`inv inventory.*`: validate inventories and import k3s-ansible ones."""
from __future__ import annotations


from drtool.tasks._cli import bad_arg, guarded, read_only, task


@task(help={"file": "inventory file to validate"})
@guarded
@read_only()
def check(c, file):
    """Validate an inventory file; print a summary or one line naming the bad field (exit 2)."""
    from drtool.inventory import load_inventory

    inv = load_inventory(file)
    roles = ", ".join(f"{n.name} ({n.role})" for n in inv.nodes)
    print(f"{file}: ok: cluster {inv.cluster.name}, nodes {roles}, k3s {inv.k3s.version}, flux {inv.flux.version}")


@task(name="import-ansible", help={
    "file": "k3s-ansible inventory (YAML or INI; group_vars/ and host_vars/ beside it are read)",
    "output": "write here instead of stdout",
    "node_name": "ADDRESS=NAME: the node name of a host the inventory lists by IP address (repeatable)",
    "kubeconfig": "read the node names of hosts listed by address from this running cluster (Node addresses)"},
      iterable=["node_name"])
@guarded
@read_only("output")
def import_ansible(c, file, output=None, node_name=None, kubeconfig=None):
    """Convert a k3s-ansible inventory into a drtool inventory (tokens and vault values are never copied)."""
    import sys
    from pathlib import Path

    import yaml

    from drtool.inventory import parse_inventory
    from drtool.inventory_import import convert_inventory, load_ansible_inventory, parse_node_names

    names = parse_node_names(node_name)
    if kubeconfig:
        from drtool.inventory_import import node_names_from_cluster

        names = {**node_names_from_cluster(kubeconfig), **names}  # names given by hand win
    converted, notes = convert_inventory(load_ansible_inventory(file), names)
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
