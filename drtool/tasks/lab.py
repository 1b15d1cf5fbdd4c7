"""`inv lab.*`: the local lab (real sshd nodes, simulated K3s and Flux on loopback)."""
from __future__ import annotations


from drtool.tasks._cli import guarded, read_only, task


def _lab():
    from drtool.lab.nodes import Lab

    return Lab()


@task(help={"nodes": "number of nodes (default: the lab's current count, or 2)",
            "gitops": "a local Git repo or directory laid out for Flux to use instead of the fixture "
                      "(without it the lab serves its fixture)",
            "path": "cluster path inside --gitops (default clusters/homelab)",
            "scenario": "scenario name or YAML file (default homelab)",
            "names": "node names, comma-separated, the first one the server (e.g. cp-1,worker-1)",
            "inventory": "take the node names, roles, labels and taints from this drtool inventory",
            "chart_crds": "a chart -> CRDs catalog file (format of drtool/gitops/chart_crds.yaml) "
                          "that overrides drtool's for the charts it names"})
@guarded
def up(c, nodes=None, gitops=None, path=None, scenario=None, names=None, inventory=None, chart_crds=None):
    """Start the lab nodes (127.0.0.1X:2222) and lay out the K3s artifacts, flux CLI, GitOps repo and inventory."""
    import json

    from drtool.lab.setup import describe_gitops, lab_up

    lab = _lab()
    state = lab_up(lab, int(nodes) if nodes else None, gitops=gitops, path=path, scenario=scenario,
                   names=names, inventory=inventory, chart_crds=chart_crds)
    listed = ", ".join(f"{n.name}@{n.address}:{n.ssh_port}" for n in state.nodes)
    print(f"lab up in {lab.root}: {listed} (started {len(state.started)} in {state.start_seconds:.2f}s)")
    print(describe_gitops(json.loads(lab.lab_json_path.read_text()).get("gitops")))
    print(f"inventory: {lab.root / 'inventory.yaml'} (rebuild: inv rebuild -i {lab.root / 'inventory.yaml'} --yes)")


@task(help={"purge": "also delete the node dirs (their /etc, /var/lib and /mnt data)"})
@guarded
def down(c, purge=False):
    """Stop every lab node; leaves no process or mount behind."""
    lab = _lab()
    lab.down(purge=purge)
    print(f"lab down ({lab.root})")


@task
@guarded
@read_only()
def status(c):
    """Show each lab node: running, pid, address."""
    lab = _lab()
    nodes = lab.status()
    if not nodes:
        print(f"no lab nodes in {lab.root} (start them with `inv lab.up`)")
        return
    for st in nodes:
        state = "listening" if st.listening else "running (sshd not listening)" if st.running else "stopped"
        pid = f"pid {st.pid}" if st.pid else "-"
        print(f"{st.name:<8} {st.address}:{st.ssh_port:<6} {state:<12} {pid}")
    import json

    from drtool.lab.setup import describe_gitops

    print(describe_gitops(json.loads(lab.lab_json_path.read_text()).get("gitops")))
    if (lab.root / "inventory.yaml").exists():
        print(f"inventory: {lab.root / 'inventory.yaml'}")


@task(name="critical-path", help={"scenario": "scenario name or YAML file (default homelab)",
                                   "nudged": "no requeue-dependency waits: Flux is told at once that a dependency "
                                             "is Ready (what drtool's nudges do)"})
@guarded
@read_only()
def critical_path(c, scenario=None, nudged=False):
    """Print the scenario's critical path: the least possible install-to-all-ready time."""
    import json

    from drtool.lab.nodes import Lab
    from drtool.lab.scenarios import critical_path as cp, load_scenario
    from drtool.lab.setup import scenario_path

    lab = Lab()
    gitops = json.loads(lab.lab_json_path.read_text()).get("gitops", {}) if lab.lab_json_path.exists() else {}
    repo = gitops.get("default")
    if not repo:
        from drtool.lab.gitops_repo import fixture_dir

        repo = fixture_dir()
    sc = load_scenario(scenario_path(scenario))
    seconds = cp(sc, repo, gitops.get("path", "clusters/homelab"), nudged=nudged)
    # Lab seconds, as measured on the lab; Flux's own durations in it play at time_scale.
    if nudged:
        print(f"{seconds:.2f}s (lab time, nudged: no {sc.flux.requeue_dependency:g} s dependency requeue waits; "
              f"Flux's other durations at time_scale {sc.time_scale:g})")
    else:
        print(f"{seconds:.2f}s (lab time; Flux's durations at time_scale {sc.time_scale:g}: its "
              f"{sc.flux.requeue_dependency:g} s dependency requeue takes {sc.scaled(sc.flux.requeue_dependency):g} s)")
