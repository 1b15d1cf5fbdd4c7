"""What an operator sets up for unattended drills: webhooks checked at load, crontab installed once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INV = Path(sys.executable).parent / "inv"
TOKEN = "T00000000/B00000000/XXXXsecretXXXX"


def _local_repository(tmp_path: Path, data: dict) -> None:
    """The lab's repository and its stand-in for github.com beside this inventory copy, so the
    repository check of preflight reads a real local Git repository (never the network)."""
    from drtool.lab.git_remote import write_git_remote
    from drtool.lab.gitops_repo import prepare_gitops

    gitops = prepare_gitops(tmp_path / "lab", path=data["flux"]["path"], owner=data["flux"]["owner"],
                            repository=data["flux"]["repository"], branch=data["flux"]["branch"])
    data["flux"]["git_config_file"] = str(write_git_remote(tmp_path / "lab", gitops["url_map"]))
    data["flux"]["checkout"] = gitops["default"]


def inventory(tmp_path: Path, **drill) -> Path:
    data = yaml.safe_load((ROOT / "inventory/lab.yaml").read_text())
    _local_repository(tmp_path, data)
    data["drill"] = {**(data.get("drill") or {}), "enabled": True, **drill}
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def inv(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(INV), *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **(env or {})})


BAD_HOOKS = [
    ({"name": "team", "type": "slack", "url": f"hooks.slack.com/services/{TOKEN}"}, "drill.notify[0].url"),
    ({"name": "team", "type": "slack", "url": f"ftp://hooks.slack.com/services/{TOKEN}"}, "drill.notify[0].url"),
    ({"name": "team", "type": "slack", "url": f"https://hooks.slack.com:99999/services/{TOKEN}"}, "drill.notify[0].url"),
    ({"name": "team", "type": "teams", "url": f"https://hooks.slack.com/services/{TOKEN}"}, "drill.notify[0].type"),
    ({"name": "team", "type": "json", "url": "https://h.example/x", "timeout": "5m"}, "drill.notify[0].timeout"),
    ({"name": "team", "type": "json", "url": "https://h.example/x", "headers": {"X-A": "a\nb"}},
     "drill.notify[0].headers"),
]


@pytest.mark.parametrize("hook,field", BAD_HOOKS)
def test_malformed_webhook_is_rejected_when_the_inventory_loads(tmp_path, hook, field):
    path = inventory(tmp_path, notify=[hook])
    check = inv("inventory.check", str(path))
    assert check.returncode == 2, check.stdout + check.stderr
    assert f"{path}: {field}:" in check.stderr and TOKEN not in check.stderr + check.stdout


def test_a_drill_with_a_malformed_webhook_stops_before_anything_happens(tmp_path):
    # The drill loads the inventory the same way inventory.check does (every case above): one is enough.
    hook, field = BAD_HOOKS[0]
    path = inventory(tmp_path, notify=[hook])
    runs = tmp_path / "runs"
    drill = inv("drill", "-i", str(path), env={"DRTOOL_RUNS_DIR": str(runs)})
    assert drill.returncode == 2 and f"{field}:" in drill.stderr, drill.stderr
    assert TOKEN not in drill.stderr + drill.stdout
    assert not runs.exists() or not any(runs.iterdir())


def test_duplicate_webhook_names_are_rejected(tmp_path):
    hook = {"name": "team", "type": "json", "url": "https://h.example/x"}
    check = inv("inventory.check", str(inventory(tmp_path, notify=[hook, hook])))
    assert check.returncode == 2 and "drill.notify[1].name: duplicate webhook name 'team'" in check.stderr


def fake_crontab(tmp_path: Path, list_fails: bool = False) -> dict:
    """A `crontab` on PATH that keeps the table in a file, like the real one keeps the spool."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "crontab.txt"
    list_cmd = ('echo "crontab: cannot open spool" >&2; exit 1' if list_fails else
                f'[ -f {table} ] || {{ echo "no crontab for $(id -un)" >&2; exit 1; }}; cat {table}; exit 0')
    (bin_dir / "crontab").write_text(
        f'#!/bin/sh\nif [ "$1" = "-l" ]; then {list_cmd}; fi\n'
        f'if [ "$1" = "-" ]; then cat > {table}; exit 0; fi\nexit 2\n')
    (bin_dir / "crontab").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_crontab_install_adds_the_line_once_however_often_run(tmp_path):
    env = fake_crontab(tmp_path)
    table = tmp_path / "crontab.txt"
    path = unattended_inventory(tmp_path)
    env_file = secret_file(tmp_path / "drill.env", "GITHUB_TOKEN=ghp_x\nK3S_TOKEN=K10x\n")
    for _ in range(3):
        res = inv("drill.schedule", "-i", str(path), "--cron", "0 3 * * 0", "--install", "--env-file", str(env_file),
                  env=env)
        assert res.returncode == 0, res.stderr
    lines = table.read_text().splitlines()
    assert sum("drill -i" in line for line in lines) == 1, lines
    # The operator's own jobs survive, and a changed schedule replaces the drill line.
    table.write_text("MAILTO=ops@example.org\n15 1 * * * /usr/local/bin/backup\n" + table.read_text())
    res = inv("drill.schedule", "-i", str(path), "--cron", "30 2 * * 6", "--install", "--env-file", str(env_file),
              env=env)
    assert res.returncode == 0, res.stderr
    lines = table.read_text().splitlines()
    assert lines[:2] == ["MAILTO=ops@example.org", "15 1 * * * /usr/local/bin/backup"]
    drill_lines = [line for line in lines if "drill -i" in line]
    assert len(drill_lines) == 1 and drill_lines[0].startswith("30 2 * * 6 "), lines


def test_crontab_that_cannot_be_read_is_not_overwritten(tmp_path):
    env = fake_crontab(tmp_path, list_fails=True)
    env_file = secret_file(tmp_path / "drill.env", "GITHUB_TOKEN=ghp_x\nK3S_TOKEN=K10x\n")
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--cron", "0 3 * * 0", "--install",
              "--env-file", str(env_file), env=env)
    assert res.returncode == 1 and "crontab -l failed" in res.stderr and "nothing changed" in res.stderr
    assert not (tmp_path / "crontab.txt").exists()


# --------------------------------------------------------------------------- unattended environment


def unattended_inventory(tmp_path: Path, **drill) -> Path:
    """An inventory whose local preflight can pass here: a flux CLI stand-in, an online install."""
    flux = tmp_path / "flux"
    flux.write_text("#!/bin/sh\necho 'flux: v2.4.0'\n")
    flux.chmod(0o755)
    data = yaml.safe_load((ROOT / "inventory/lab.yaml").read_text())
    _local_repository(tmp_path, data)
    data["flux"]["cli"] = str(flux)
    data["k3s"]["install"] = {"method": "online"}
    data["k3s"]["token"] = {"token_env": "K3S_TOKEN"}
    data["secrets"] = []
    data["drill"] = {"enabled": True, **drill}
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


HOOK = {"name": "team", "type": "slack", "url_env": "DRILL_SLACK_URL"}


def test_check_reports_what_the_scheduled_drill_would_miss(tmp_path):
    path = unattended_inventory(tmp_path, notify=[HOOK])
    env_file = secret_file(tmp_path / "drill.env", "# tokens for the nightly drill\nGITHUB_TOKEN=ghp_abc123secret\n")
    # The operator's shell has K3S_TOKEN; the timer will not, so it does not count.
    res = inv("drill.schedule", "-i", str(path), "--check", "--env-file", str(env_file),
              env={"K3S_TOKEN": "K10shellonly", "DRILL_SLACK_URL": "https://hooks.slack.com/services/x"})
    assert res.returncode == 3, res.stdout + res.stderr
    fails = [line for line in res.stdout.splitlines() if line.startswith("fail")]
    assert any("K3S_TOKEN" in line for line in fails) and any("DRILL_SLACK_URL" in line for line in fails), res.stdout
    assert any(line.startswith("pass") and "GITHUB_TOKEN" in line for line in res.stdout.splitlines())
    assert "would fail preflight" in res.stderr
    assert "ghp_abc123secret" not in res.stdout + res.stderr and "K10shellonly" not in res.stdout + res.stderr

    k3s = secret_file(tmp_path / "k3s-token", "K10fromcredential\n")
    secret_file(env_file, env_file.read_text() + "DRILL_SLACK_URL=https://hooks.slack.com/services/T0/B0/x\n")
    ok = inv("drill.schedule", "-i", str(path), "--check", "--env-file", str(env_file),
             "--credential", f"K3S_TOKEN={k3s}")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "has what preflight needs" in ok.stdout


@pytest.mark.parametrize("mode,problem", [(0o644, "mode 0644 lets others read the tokens; run chmod 600"),
                                          (0o640, "mode 0640")])
def test_env_file_must_be_private(tmp_path, mode, problem):
    env_file = secret_file(tmp_path / "drill.env", "GITHUB_TOKEN=x\n", mode)
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--on-calendar", "Sun 03:00",
              "--env-file", str(env_file))
    assert res.returncode == 2 and f"--env-file: {env_file}: {problem}" in res.stderr, res.stderr


def test_env_file_missing_is_named(tmp_path):
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--on-calendar", "Sun 03:00",
              "--env-file", str(tmp_path / "nope.env"))
    assert res.returncode == 2 and f"--env-file: {tmp_path / 'nope.env'}: file not found" in res.stderr


def test_env_file_value_read_differently_by_systemd_and_sh_is_refused(tmp_path):
    env_file = secret_file(tmp_path / "drill.env", 'GITHUB_TOKEN="quoted value"\n')
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--on-calendar", "Sun 03:00",
              "--env-file", str(env_file))
    assert res.returncode == 2 and "line 1 (GITHUB_TOKEN)" in res.stderr and "quoted value" not in res.stderr


def test_units_name_the_env_file_and_credentials_never_the_tokens(tmp_path):
    env_file = secret_file(tmp_path / "drill.env", "GITHUB_TOKEN=ghp_abc123secret\n")
    k3s = secret_file(tmp_path / "k3s-token", "K10secret\n")
    out = tmp_path / "units"
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--on-calendar", "Sun 03:00",
              "--env-file", str(env_file), "--credential", f"K3S_TOKEN={k3s}", "--output", str(out))
    assert res.returncode == 0, res.stderr
    service = (out / "drtool-drill-lab.service").read_text()
    assert f"EnvironmentFile={env_file}\n" in service and f"LoadCredential=K3S_TOKEN:{k3s}\n" in service
    assert "ghp_abc123secret" not in service and "K10secret" not in service


def test_cron_line_reads_the_env_file_before_the_drill(tmp_path):
    from drtool.drills.schedule import cron_line

    script = tmp_path / "fake inv"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$GITHUB_TOKEN" > "$(dirname "$0")/seen"\n')
    script.chmod(0o755)
    env_file = secret_file(tmp_path / "drill env", "GITHUB_TOKEN=ghp_fromfile\n")
    line = cron_line("inv.yaml", "homelab", "0 3 * * 0", tmp_path, [str(script)],
                     lock_file=tmp_path / "lock", environment_file=env_file)
    assert "ghp_fromfile" not in line
    cmd = line.split(None, 5)[5].replace("\\%", "%")
    # cron's bare environment: no GITHUB_TOKEN of ours leaks in.
    subprocess.run(["/bin/sh", "-c", cmd], check=True, timeout=10, env={"PATH": os.environ["PATH"]})
    assert (tmp_path / "seen").read_text() == "ghp_fromfile\n"


def test_systemd_credentials_become_variables(tmp_path):
    from drtool.drills.unattended import load_credentials

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "GITHUB_TOKEN").write_text("ghp_cred\n")
    (creds / "K3S_TOKEN").write_text("K10cred")
    env = {"CREDENTIALS_DIRECTORY": str(creds), "K3S_TOKEN": "already-set"}
    assert load_credentials(env) == ["GITHUB_TOKEN"]
    assert env["GITHUB_TOKEN"] == "ghp_cred" and env["K3S_TOKEN"] == "already-set"


def test_webhook_url_from_the_environment(tmp_path):
    from drtool.drills.drill import webhooks
    from drtool.errors import BadInput
    from drtool.inventory import load_inventory

    path = unattended_inventory(tmp_path, notify=[HOOK])
    loaded = load_inventory(path)
    [hook] = webhooks(loaded, {"DRILL_SLACK_URL": f"https://hooks.slack.com/services/{TOKEN}"})
    assert hook.url.endswith(TOKEN) and TOKEN not in repr(hook)
    with pytest.raises(BadInput, match=r"drill.notify\[0\].url_env: environment variable DRILL_SLACK_URL is not set"):
        webhooks(loaded, {})
    with pytest.raises(BadInput, match=r"drill.notify\[0\].url_env: environment variable DRILL_SLACK_URL does not hold"):
        webhooks(loaded, {"DRILL_SLACK_URL": "not a url"})
    # Unset when the drill starts: it stops before anything, no run directory.
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "DRILL_SLACK_URL"}
    res = subprocess.run([str(INV), "drill", "-i", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**env, "DRTOOL_RUNS_DIR": str(runs)})
    assert res.returncode == 2 and "DRILL_SLACK_URL is not set" in res.stderr, res.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_webhook_needs_exactly_one_of_url_and_url_env(tmp_path):
    both = {**HOOK, "url": "https://h.example/x"}
    for hook in (both, {"name": "team", "type": "json"}):
        res = inv("inventory.check", str(inventory(tmp_path, notify=[hook])))
        assert res.returncode == 2 and "drill.notify[0]: set exactly one of url or url_env" in res.stderr, res.stderr


def test_install_refuses_a_schedule_that_would_fail_preflight(tmp_path):
    env = fake_crontab(tmp_path)
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--cron", "0 3 * * 0", "--install",
              env={**env, "GITHUB_TOKEN": "ghp_shell", "K3S_TOKEN": "K10shell"})
    assert res.returncode == 3 and "would fail preflight" in res.stderr and "GITHUB_TOKEN" in res.stderr, res.stderr
    assert not (tmp_path / "crontab.txt").exists()


def test_units_without_secrets_say_what_the_drill_will_miss(tmp_path):
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--on-calendar", "Sun 03:00",
              env={"GITHUB_TOKEN": "ghp_shell"})
    assert res.returncode == 0, res.stderr
    assert "note: the scheduled drill reads GITHUB_TOKEN, K3S_TOKEN, which nothing here provides" in res.stderr


def test_env_file_in_a_folder_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # no sticky bit: anyone may replace the file
    env_file = secret_file(shared / "drill.env", "GITHUB_TOKEN=x\n")
    res = inv("drill.schedule", "-i", str(unattended_inventory(tmp_path)), "--on-calendar", "Sun 03:00",
              "--env-file", str(env_file))
    assert res.returncode == 2 and f"its folder {shared} is writable by others" in res.stderr, res.stderr
