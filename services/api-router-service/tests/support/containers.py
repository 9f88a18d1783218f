"""Containers of the chart and the Compose file, run as local processes.

There is no container engine here, so a container is emulated the way it would see the
world: the image's entrypoint and environment (read from the Dockerfile), the container's
args and env (Secrets and ConfigMaps resolved), and every volume a directory of its own
under a scratch root, with the container's absolute paths mapped onto those directories
in args, env and mounted files. A path the container would reach outside its volumes is
not mapped, so a config pointing at the wrong place fails here as it would in the pod.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[4]
DOCKERFILE = REPO / "deployments/docker/Dockerfile"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Image:
    """What the runtime stage of the Dockerfile gives every container."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    user: str
    workdir: str
    labels: dict[str, str]

    @classmethod
    def from_dockerfile(cls, path: Path = DOCKERFILE) -> Image:
        joined = re.sub(r"\\\n", " ", path.read_text())
        stages = re.split(r"^FROM\s", joined, flags=re.MULTILINE)
        final = [line.strip() for line in stages[-1].splitlines()]
        instructions: dict[str, list[str]] = {}
        for line in final:
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                instructions.setdefault(word.upper(), []).append(rest.strip())
        return cls(
            entrypoint=json.loads(instructions["ENTRYPOINT"][-1]),
            cmd=json.loads(instructions["CMD"][-1]),
            env=_pairs(instructions.get("ENV", [])),
            user=instructions["USER"][-1],
            workdir=instructions["WORKDIR"][-1],
            labels=_pairs(instructions.get("LABEL", [])),
        )


def _pairs(lines: Iterable[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in lines:
        for word in shlex.split(line):
            name, _, value = word.partition("=")
            pairs[name] = value
    return pairs


@dataclass
class Mount:
    path: str  # inside the container
    host: Path
    writable: bool


@dataclass
class Container:
    """One container's command, environment and volumes, mapped onto this machine."""

    name: str
    args: list[str]
    env: dict[str, str]
    # Where this container's volumes live on this machine.
    root: Path
    mounts: list[Mount] = field(default_factory=list)
    image: Image = field(default_factory=Image.from_dockerfile)

    def host_path(self, path: str) -> str:
        """``path`` inside the container as a path on this machine (unchanged when it is
        on no volume)."""
        for mount in sorted(self.mounts, key=lambda m: len(m.path), reverse=True):
            if path == mount.path or path.startswith(mount.path.rstrip("/") + "/"):
                return str(mount.host) + path[len(mount.path.rstrip("/")) :]
        return path

    def writable(self, path: str) -> bool:
        return any(
            m.writable and (path == m.path or path.startswith(m.path.rstrip("/") + "/"))
            for m in self.mounts
        )

    def argv(self, args: Sequence[str] | None = None) -> list[str]:
        """The command line the container runs (or ``args`` instead of its own), with the
        entrypoint taken from this venv, where the wheel the image holds is installed."""
        program, *entry_args = self.image.entrypoint
        words = [*entry_args, *(self.args if args is None else args)]
        return [str(VENV_BIN / program), *(self._mapped(w) for w in words)]

    def environ(self, **extra: str) -> dict[str, str]:
        """The process environment: the image's, then the container's, mapped."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("API_ROUTER")}
        env.update({k: v for k, v in self.image.env.items() if k != "PATH"})
        env.update(self.env)
        env.update(extra)
        env = {name: self._mapped(value) for name, value in env.items()}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        return env

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """``api-router ARGS`` run to completion in this container (``kubectl exec``)."""
        return subprocess.run(
            self.argv(args),
            env=self.environ(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    @property
    def workdir(self) -> Path:
        """The image's WORKDIR: its volume, or else an empty stand-in for the image's
        (read-only) directory."""
        mapped = self.host_path(self.image.workdir)
        if mapped != self.image.workdir:
            return Path(mapped)
        stand_in = self.root / "image-workdir"
        stand_in.mkdir(parents=True, exist_ok=True)
        return stand_in

    def _mapped(self, word: str) -> str:
        return self.host_path(word) if word.startswith("/") else word


def pod_container(
    pod: Mapping[str, Any],
    name: str,
    objects: Sequence[Mapping[str, Any]],
    root: Path,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> Container:
    """Container ``name`` of a rendered pod spec. ConfigMaps and Secrets come from the
    rendered ``objects``, else from ``secrets`` (those made outside the chart)."""
    spec = next(c for c in pod["containers"] if c["name"] == name)
    config_maps = _data(objects, "ConfigMap")
    all_secrets = {**(secrets or {}), **_data(objects, "Secret")}
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    env = {}
    for entry in spec.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = all_secrets[ref["name"]][ref["key"]]
    container = Container(name, list(spec.get("args", [])), env, root)
    filled = []
    for mount in spec.get("volumeMounts", []):
        host = root / mount["name"]
        host.mkdir(parents=True)
        source = volumes.get(mount["name"], {})  # absent: a StatefulSet's volume claim
        writable = not mount.get("readOnly") and "configMap" not in source
        container.mounts.append(Mount(mount["mountPath"], host, writable))
        if "configMap" in source:
            filled.append((host, config_maps[source["configMap"]["name"]]))
        elif "secret" in source:
            data = all_secrets[source["secret"]["secretName"]]
            items = source["secret"].get("items") or [{"key": k, "path": k} for k in data]
            _write_like_the_kubelet(host, {item["path"]: data[item["key"]] for item in items})
    # Mounted files name container paths too (router.yaml's policies_file, spool_dir).
    for host, files in filled:
        _write_like_the_kubelet(host, {k: _map_paths(v, container) for k, v in files.items()})
    return container


def _data(objects: Sequence[Mapping[str, Any]], kind: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for item in objects:
        if item["kind"] != kind:
            continue
        data = dict(item.get("data") or {})
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            data.update(item.get("stringData") or {})
        found[item["metadata"]["name"]] = data
    return found


def _write_like_the_kubelet(directory: Path, files: Mapping[str, str], version: int = 1) -> None:
    """A ConfigMap volume as the kubelet lays it out: files in a timestamped directory,
    ``..data`` a symlink to it, each key a symlink through ``..data``. An update writes a
    new directory and swaps ``..data`` in one rename."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = directory / f"..{version}"
    payload.mkdir()
    for key, text in files.items():
        (payload / key).write_text(text)
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(Path("..data") / key)
    swap = directory / "..data_tmp"
    swap.symlink_to(payload.name)
    swap.rename(directory / "..data")


def update_config_map(container: Container, mount_path: str, files: Mapping[str, str]) -> None:
    """Change a mounted ConfigMap the way the kubelet does for a running pod."""
    mount = next(m for m in container.mounts if m.path == mount_path)
    version = len(list(mount.host.glob("..[0-9]*"))) + 1
    mapped = {key: _map_paths(text, container) for key, text in files.items()}
    _write_like_the_kubelet(mount.host, mapped, version)


def _map_paths(text: str, container: Container) -> str:
    """Every container path in ``text`` on a volume, mapped (in one pass: host paths may
    themselves look like container paths, /tmp/... say)."""
    paths = sorted((m.path for m in container.mounts), key=len, reverse=True)
    pattern = "|".join(re.escape(path) for path in paths)
    return re.sub(rf"(?:{pattern})(?=/|\s|$)", lambda m: container.host_path(m[0]), text)


def compose_container(
    service: Mapping[str, Any], name: str, compose_dir: Path, root: Path
) -> Container:
    """A Compose service as a container: bind mounts map to the files they name, named
    volumes and tmpfs mounts to empty directories."""
    mounts = []
    for entry in service.get("tmpfs", []):
        host = root / entry.strip("/").replace("/", "-")
        host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(entry, host, writable=True))
    for entry in service.get("volumes", []):
        source, target, *options = entry.split(":")
        if source.startswith((".", "/")):
            host = (compose_dir / source).resolve()
            assert host.exists(), f"{name}: bind mount source {source} does not exist"
        else:
            host = root / source
            host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(target, host, writable="ro" not in options))
    env = {k: str(v) for k, v in service.get("environment", {}).items()}
    command = service.get("command", [])
    return Container(name, [str(word) for word in command], env, root, mounts)
