"""The ``git`` GitOps driver: the desired state committed to the GitOps repository with the git
CLI; the cluster's own GitOps agent (Argo CD, Flux) applies it.

A cloud's desired state is one YAML file (``gitops.git.path_template``, ``{cloud}`` replaced)
listing the burst apps that run on its cluster. deploy adds apps to that list, undeploy removes
them: each call fetches the branch into a fresh work directory, rewrites the file, commits and
pushes; when the file already says so it commits nothing (``changed`` false, no empty commit).
A push that loses a race with another writer is retried on the new head. The revision is the
commit sha on the branch.

The repository is a path (the lab: a bare repository) or a URL (production). For HTTPS
remotes, ``credentials_ref`` (``USER:TOKEN`` or a token) is handed to git through its
environment as an ``http.extraHeader``; never in argv, never in an error or a log line.

Done means pushed: the driver has no view of the cluster, so an app it committed reports
synced and healthy, and the detail says so.
"""

from __future__ import annotations

import asyncio
import base64
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from drivers.gitops.base import GitOpsDriver, fill, result_of
from drivers.gitops.errors import GitOpsAuthFailed, GitOpsError, GitOpsRejected
from drivers.gitops.types import AppState, GitOpsResult
from drivers.progress import report as report_progress
from drivers.secrets import resolve_secret
from hybridops.childenv import child_environment
from hybridops.errors import ConfigError
from hybridops.inventory import GitOpsSettings

GIT_INHERITED_ENV = ("SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "GIT_SSH", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH")
"""What git takes from the worker's environment beyond the allow-list: how to reach the remote
(ssh's agent socket, not a key; the CA for an HTTPS remote)."""
PUSH_ATTEMPTS = 3
"""How often a push rejected because the branch moved is redone on the new head."""
HEADER = "# Managed by HybridOps: the burst apps that run on this cloud's cluster.\n"
AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")
AUTH_FAILURES = ("Authentication failed", "could not read Username", "Permission denied", "403")
PUSH_RACE = ("[rejected]", "fetch first", "non-fast-forward", "cannot lock ref")
_STDERR_LINES = 5


class _Rejected(Exception):
    """The push lost a race: the branch moved since the fetch."""


class GitDriver(GitOpsDriver):
    """The GitOps repository ``gitops.git.repo``, branch ``gitops.git.branch``."""

    def __init__(self, settings: GitOpsSettings) -> None:
        super().__init__(settings)
        self.git = settings.git
        if not self.git.repo:
            raise ConfigError("gitops.git.repo: not configured (the GitOps repository's path or URL)")
        self.repo = self.git.repo
        author = AUTHOR.match(self.git.author)
        if author is None:
            raise ConfigError(f"gitops.git.author: {self.git.author!r} is not 'Name <email>'")
        self.author = author["name"], author["email"]
        self._secrets: list[str] = []  # the credentials' forms that errors must not show

    # ------------------------------------------------------------------ the interface

    async def _deploy(self, apps: list[str], cloud: str, run_id: str, revision: str | None) -> GitOpsResult:
        # The revision is already pushed: applying it is the cluster's own agent's work.
        return await self._converge(apps, cloud, run_id, present=True)

    async def _undeploy(self, apps: list[str], cloud: str, run_id: str) -> GitOpsResult:
        return await self._converge(apps, cloud, run_id, present=False)

    async def _status(self, apps: list[str], cloud: str) -> GitOpsResult:
        with tempfile.TemporaryDirectory(prefix="hybridops-gitops-") as tmp:
            work = Path(tmp)
            env = self._env()
            head = await self._checkout(work, env)
            listed = _read_apps(work / self._path(cloud))
        return self._result(apps, cloud, listed, head, changed=False, present=True)

    # ------------------------------------------------------------------ helpers

    def _path(self, cloud: str) -> str:
        path = fill(self.git.path_template, "", cloud)
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ConfigError(f"gitops.git.path_template: {path!r} is not a path inside the repository")
        return path

    async def _converge(self, apps: list[str], cloud: str, run_id: str, present: bool) -> GitOpsResult:
        rel = self._path(cloud)
        verb = "deploy" if present else "undeploy"
        message = f"hybridops: {verb} {', '.join(apps)} on {cloud}\n\nrun: {run_id}\n"
        listed: list[str] = []

        def edit(work: Path) -> dict[str, str]:
            nonlocal listed
            file = work / rel
            listed = _read_apps(file)
            wanted = sorted(set(listed) | set(apps)) if present else sorted(set(listed) - set(apps))
            if wanted == listed and (file.exists() or not wanted):
                return {}
            listed = wanted
            return {rel: HEADER + yaml.safe_dump({"cloud": cloud, "apps": wanted}, sort_keys=False)}

        changed, sha = await self._commit(edit, message, cloud)
        return self._result(apps, cloud, listed, sha, changed=changed, present=present)

    async def commit_files(self, files: dict[str, str], message: str) -> tuple[bool, str | None]:
        """Make the branch hold ``files`` (paths inside the repository to their whole text) in
        one commit with ``message``; whether it had to commit, and the branch's head after.
        Idempotent: when every file already holds its text, nothing is committed."""
        for rel in files:
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ConfigError(f"{rel!r}: not a path inside the GitOps repository")

        def edit(work: Path) -> dict[str, str]:
            return {
                rel: text
                for rel, text in files.items()
                if not (work / rel).is_file() or (work / rel).read_text() != text
            }

        return await self._commit(edit, message, None)

    async def _commit(
        self, edit: Callable[[Path], dict[str, str]], message: str, cloud: str | None
    ) -> tuple[bool, str | None]:
        """Check the branch out, ask ``edit`` (given the work tree) which files to write, and
        commit and push them; redone on the new head when the push loses a race. Whether it
        committed, and the branch's head after."""
        env = self._env()
        ids = {"cloud": cloud} if cloud else {}
        for _ in range(PUSH_ATTEMPTS):
            with tempfile.TemporaryDirectory(prefix="hybridops-gitops-") as tmp:
                work = Path(tmp)
                head = await self._checkout(work, env)
                files = edit(work)
                if not files:
                    return False, head
                for rel, text in files.items():
                    (work / rel).parent.mkdir(parents=True, exist_ok=True)
                    (work / rel).write_text(text)
                await self._git(work, env, "add", "--", *sorted(files))
                await self._git(work, env, "commit", "-q", "-m", message)
                sha = (await self._git(work, env, "rev-parse", "HEAD")).strip()
                try:
                    await self._git(work, env, "push", "-q", "origin", f"HEAD:refs/heads/{self.git.branch}")
                except _Rejected:
                    continue
                return True, sha
        raise GitOpsError(
            f"push to {self.git.branch} rejected {PUSH_ATTEMPTS} times: the branch keeps moving", **ids
        )

    def _result(
        self, apps: list[str], cloud: str, listed: list[str], head: str | None, changed: bool, present: bool
    ) -> GitOpsResult:
        states = []
        for app in apps:
            done = (app in listed) == present
            where = f"at {head[:12]}" if head else "(branch empty)"
            if app in listed:
                detail = f"listed in {self._path(cloud)} {where}; the cluster's GitOps agent applies it"
            else:
                detail = f"not listed in {self._path(cloud)} {where}"
            states.append(AppState(name=app, synced=done, healthy=done, detail=detail))
        return result_of(cloud, states, changed, head)

    async def _checkout(self, work: Path, env: dict[str, str]) -> str | None:
        """The branch's head checked out in the empty ``work`` (an unborn branch when the
        repository has no such branch yet); its sha, or None."""
        branch = self.git.branch
        await self._git(work, env, "init", "-q", "-b", branch, ".")
        await self._git(work, env, "remote", "add", "origin", self.repo)
        heads = await self._git(work, env, "ls-remote", "--heads", "origin", f"refs/heads/{branch}")
        if not heads.strip():
            return None
        await self._git(work, env, "fetch", "-q", "--depth", "1", "origin", f"refs/heads/{branch}")
        await self._git(work, env, "checkout", "-q", "-B", branch, "FETCH_HEAD")
        return (await self._git(work, env, "rev-parse", "HEAD")).strip()

    def _env(self) -> dict[str, str]:
        """git's environment: the allow-list (:func:`hybridops.childenv.child_environment`) and
        ssh's agent, no prompts, the author, and the credentials (as config)."""
        name, email = self.author
        env = child_environment(inherited=GIT_INHERITED_ENV) | {
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        secret = resolve_secret(self.git.credentials_ref)
        if secret:
            user_token = secret if ":" in secret else f"x-access-token:{secret}"
            basic = base64.b64encode(user_token.encode()).decode()
            env |= {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
            self._secrets = [basic, secret, *secret.split(":", 1)[1:]]
        return env

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    async def _git(self, work: Path, env: dict[str, str], *args: str) -> str:
        """Run ``git args`` in ``work``; its stdout. Failures raise a domain error with the last
        lines of stderr (credentials redacted); a push rejected as not fast-forward raises
        :class:`_Rejected`."""
        report_progress({"git": args[0]})
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=work,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.settings.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise GitOpsError(f"git {args[0]}: no result within {self.settings.timeout_s:g} s") from None
        if proc.returncode == 0:
            return out.decode()
        stderr = err.decode("utf-8", "replace")
        if args[0] == "push" and any(marker in stderr for marker in PUSH_RACE):
            raise _Rejected()
        tail = " | ".join(stderr.strip().splitlines()[-_STDERR_LINES:])
        reason = self._redact(f"git {args[0]} exited {proc.returncode}: {tail}")
        if any(marker in stderr for marker in AUTH_FAILURES):
            raise GitOpsAuthFailed(reason)
        if "not found" in stderr or "does not appear to be a git repository" in stderr:
            raise GitOpsRejected(reason)
        raise GitOpsError(reason)


def _read_apps(file: Path) -> list[str]:
    """The apps a desired-state file lists (sorted); none when it does not exist."""
    if not file.exists():
        return []
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError:
        data = None
    apps = data.get("apps") if isinstance(data, dict) else None
    if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
        raise GitOpsRejected(f"{file.name}: not a desired-state file (a mapping with an 'apps' list)")
    return sorted(set(apps))
