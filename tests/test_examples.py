"""The GitHub workflow and the pre-commit hook that users copy run here with the same commands."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, write_jsonl

pytestmark = pytest.mark.skipif(not shutil.which("git") or not shutil.which("decontam"), reason="needs git and the decontam command")


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _workflow_scan_command() -> str:
    workflow = yaml.safe_load((ROOT / "examples/github-workflow.yml").read_text())
    steps = workflow["jobs"]["scan"]["steps"]
    return next(s["run"] for s in steps if s.get("name") == "Scan the rows this pull request changes")


def test_github_workflow_scan_step(tmp_path, gsm8k):
    repo = tmp_path / "dataset"
    (repo / "data").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    # the base branch already holds a known, accepted GSM8K item
    write_jsonl(repo / "data/train.jsonl", [{"prompt": gsm8k[0]["question"]}, {"prompt": "an ordinary row of text"}])
    subprocess.run(["decontam", "scan", "data/train.jsonl", "--out", "base.parquet"], cwd=repo, capture_output=True)
    subprocess.run(["decontam", "baseline", "base.parquet", "--out", ".decontam-baseline.json"], cwd=repo, check=True, capture_output=True)
    _git(repo, "add", "data/train.jsonl", ".decontam-baseline.json")
    _git(repo, "commit", "-qm", "base")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    command = _workflow_scan_command().replace("${{ github.base_ref }}", "main")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}

    clean = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr  # nothing changed: nothing to fail on

    write_jsonl(repo / "data/train.jsonl", [{"prompt": gsm8k[0]["question"]}, {"prompt": "an ordinary row of text"},
                                             {"prompt": gsm8k[7]["question"]}])
    dirty = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True)
    assert dirty.returncode == 1, dirty.stderr
    assert "1 row changed since origin/main" in dirty.stderr
    assert "gsm8k" in (tmp_path / "summary.md").read_text()
    for name in ("decontam.sarif", "decontam-audit.json", "decontam-findings.parquet"):
        assert (repo / name).exists(), name


def test_pre_commit_hook_entry(tmp_path, gsm8k):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "decontam")
    assert re.search(hook["files"], "data/train.jsonl") and re.search(hook["files"], "x.parquet")
    entry = hook["entry"].split()
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": "a note about gardening in spring"}])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": gsm8k[11]["question"]}])
    assert subprocess.run([*entry, *hook.get("args", []), str(good)], capture_output=True).returncode == 0
    assert subprocess.run([*entry, *hook.get("args", []), str(bad)], capture_output=True).returncode == 1


def test_ci_script_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    command = 'pip install torch==2.13.0 && pip install -e ".[test]" && python3 -m pytest -q -p no:benchmark'
    assert command in readme
    assert 'pip install -q torch==2.13.0 && python3 -m pip install -q -e ".[test]" && python3 -m pytest -q -p no:benchmark' in ci
    assert Path(ROOT / ".ci/run").stat().st_mode & 0o111
