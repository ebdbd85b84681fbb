#!/usr/bin/env python3
"""Makes kuberds' container images without a registry and loads them into the local cluster.

  python3 hack/images.py build [TARGET...]   base, operator, postgres, memcached, redis, mariadb, s3 (default: all)
  python3 hack/images.py load [TARGET...]    the same but base, into every node's containerd
  python3 hack/images.py all [TARGET...]     build, then load
  python3 hack/images.py --list [TARGET...]  the image names

`base` is docker.io/library/debian:bookworm-slim, made with debootstrap when podman lacks it.
The others are the Dockerfile's targets, tagged docker.io/kuberds/TARGET:VERSION (VERSION is
the chart's appVersion; a kubelet normalises `kuberds/operator:V` to that name). Each image
carries a label with the hash of what it is made from: its Dockerfile stages, the files they
copy, the images they start from and its build arguments. An image whose label matches is not
built again, and a containerd that already holds the same image is not loaded again.

Nodes' containerd sockets are found at CLUSTER/nodes/NODE/containerd.sock (CLUSTER is
$KUBERDS_CLUSTER_DIR or ~/.cache/kuberds/cluster, as in hack/localcluster/layout.py); --address adds more.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from localcluster.layout import state_dir  # hack/localcluster/, beside this script

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
CHART = REPO / "charts" / "kuberds" / "Chart.yaml"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
IMAGE_PREFIX = "docker.io/kuberds"
APP_TARGETS = ("operator", "postgres", "memcached", "redis", "mariadb", "s3")
ALL_TARGETS = ("base", *APP_TARGETS)
COMMANDS = ("build", "load", "all")
HASH_LABEL = "io.kuberds.content-hash"
# Bump to rebuild every image when this script changes how images are made.
RECIPE_VERSION = "1"
# Only for pip behind a TLS-intercepting proxy: a secret, so never part of an image or its hash.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_ARGS: dict[str, dict[str, str]] = {}  # per target; none today, hashed when added
CONTAINERD_NAMESPACE = "k8s.io"  # the one the kubelet's CRI reads
HEARTBEAT_SECONDS = 30
TAIL_LINES = 40

# --- the base image: what debootstrap lacks compared with Docker's debian:bookworm-slim ---

DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "bookworm"]
DEBIAN_MIRROR = "http://deb.debian.org/debian"
APT_CLEAN = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"
APT_CONFIG = {
    # Layers keep no downloaded packages or apt's binary caches.
    "docker-clean": f'DPkg::Post-Invoke {{ "{APT_CLEAN}"; }};\n'
    f'APT::Update::Post-Invoke {{ "{APT_CLEAN}"; }};\n'
    'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n',
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-no-recommends": 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n',
}
# dpkg's globs: `*` crosses `/`; the last matching line wins, so includes come last.
SLIM_EXCLUDE = (
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
)
SLIM_INCLUDE = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")
DPKG_CONFIG = {
    "docker-apt-speedup": "force-unsafe-io\n",  # a layer is written once: no fsync per file
    "docker": "".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDE)
    + "".join(f"path-include {p}\n" for p in SLIM_INCLUDE),
}
APT_SOURCES = f"""Types: deb
URIs: {DEBIAN_MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# Left by debootstrap, or copied from this host (its DNS, its name): a runtime provides these.
ROOTFS_RESETS = {"etc/resolv.conf": "", "etc/hostname": "localhost\n", "etc/hosts": "127.0.0.1\tlocalhost\n"}
ROOTFS_EMPTIED = ("var/lib/apt/lists", "var/cache/apt", "var/log", "tmp", "var/tmp")
ROOTFS_REMOVED = ("var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/cache/ldconfig/aux-cache")
TAR_EXCLUDES = ("./dev/*", "./proc/*", "./sys/*", "./run/*")


# --- output ---


def say(text: str) -> None:
    print(text, flush=True)


def step(started: float, text: str) -> None:
    say(f"    [{time.monotonic() - started:6.1f}s] {text[:150]}")


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def human_size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


class Failure(Exception):
    """A step failed; the message is what the user needs to see."""


def pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def stream(cmd: list[str], show: Callable[[str], str | None], started: float, stdin: IO[bytes] | None = None) -> None:
    """Runs cmd, printing the lines `show` returns with the elapsed time. A quiet stretch prints
    the latest output line, so a long step still shows it is moving. Raises Failure with the
    tail of the output when cmd fails."""
    out, err = subprocess.PIPE, subprocess.STDOUT
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, text=True, errors="replace")
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=pump, args=(proc.stdout, lines), daemon=True).start()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    last_shown = time.monotonic()
    while True:
        try:
            line = lines.get(timeout=5)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line:
            tail.append(line)
            shown = show(line)
            if shown is not None:
                step(started, shown)
                last_shown = time.monotonic()
        if time.monotonic() - last_shown >= HEARTBEAT_SECONDS:
            step(started, f"  ... {tail[-1].strip() if tail else 'working'}")
            last_shown = time.monotonic()
    if proc.wait() != 0:
        raise Failure(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}); its last lines:\n" + "\n".join(tail))


def run(cmd: list[str]) -> str:
    """Runs a quick command and returns its stdout; a failure raises with its stderr."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


# --- the Dockerfile: stages, what each target needs ---


@dataclass(frozen=True)
class Stage:
    name: str
    base: str
    instructions: tuple[str, ...]


@dataclass(frozen=True)
class Copy:
    origin: str | None  # COPY --from: a stage, a named build context or an image; None: the context
    sources: tuple[str, ...]


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined; comments and blank lines are
    left out, so editing a comment does not rebuild anything."""
    result: list[str] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment inside a continuation is dropped by the builder too
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        result.append(" ".join([*pending, line]))
        pending = []
    if pending:
        result.append(" ".join(pending))
    return result


def parse_stages(text: str) -> list[Stage]:
    """Stages in Dockerfile order. Global ARGs before the first FROM go into every stage."""
    preamble: list[str] = []
    stages: list[Stage] = []
    for instruction in instructions(text):
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            named = len(words) >= 3 and words[1].lower() == "as"
            name = words[2].lower() if named else str(len(stages))
            stages.append(Stage(name, words[0], (*preamble, instruction)))
        elif stages:
            stages[-1] = replace(stages[-1], instructions=(*stages[-1].instructions, instruction))
        else:
            preamble.append(instruction)
    return stages


def copies(stage: Stage) -> list[Copy]:
    result = []
    for instruction in stage.instructions:
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() not in ("COPY", "ADD"):
            continue
        words = json.loads(rest) if rest.lstrip().startswith("[") else rest.split()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        result.append(Copy(origin, tuple(paths[:-1])))
    return result


def stage_closure(stages: list[Stage], target: str) -> list[Stage]:
    """The target's stage and every stage it starts from or copies from, in Dockerfile order."""
    by_name = {s.name: s for s in stages}
    if target not in by_name:
        raise Failure(f"the Dockerfile has no target {target!r}")
    needed: set[str] = set()
    todo = [target]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        stage = by_name[name]
        refs = [stage.base] + [c.origin for c in copies(stage) if c.origin]
        todo += [r.lower() for r in refs if r.lower() in by_name]
    return [s for s in stages if s.name in needed]


def external_refs(closure: list[Stage], named_contexts: Iterable[str]) -> tuple[list[str], list[Copy]]:
    """What the stages take from outside the Dockerfile: images (by reference) and copies from
    the build context or a named build context."""
    names = {s.name for s in closure}
    contexts = set(named_contexts)
    images = [s.base for s in closure if s.base.lower() not in names]
    outside = []
    for stage in closure:
        for c in copies(stage):
            if c.origin is None or c.origin in contexts:
                outside.append(c)
            elif c.origin.lower() not in names:
                images.append(c.origin)
    return sorted(set(images)), outside


# --- content hashing ---


def file_digest(path: Path) -> str:
    """Content and the executable bit (COPY keeps it); a symlink by its target."""
    if path.is_symlink():
        return "link:" + os.readlink(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    mode = "x" if path.stat().st_mode & 0o100 else "-"
    return f"{mode}:{digest.hexdigest()}"


def content_hash(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def git_files(sources: Iterable[str]) -> list[str]:
    """The files a COPY of these context paths takes: git's view (tracked, or untracked and not
    ignored), so caches and *.egg-info stay out of both the image and its hash."""
    sources = list(sources)
    if not sources:
        return []
    out = run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *sources])
    listed = {f for f in out.split("\0") if f and (REPO / f).is_file()}
    for source in sources:
        if not any(f == source or f.startswith(source.rstrip("/") + "/") for f in listed):
            raise Failure(f"COPY source {source!r} is not in the repository (or only ignored files are)")
    return sorted(listed)


def named_files(directory: Path, sources: Iterable[str]) -> list[tuple[str, Path]]:
    result = []
    for source in sources:
        path = directory / source
        if not path.exists():
            raise Failure(f"{path} is missing")
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        result += [(str(p.relative_to(directory)), p) for p in found]
    return result


# --- podman ---


def inspect_image(ref: str) -> dict | None:
    done = subprocess.run(["podman", "image", "inspect", ref], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)[0]


def image_label(image: dict | None, key: str) -> str | None:
    if image is None:
        return None
    return ((image.get("Config") or {}).get("Labels") or {}).get(key) or (image.get("Labels") or {}).get(key)


def chart_version(chart_text: str) -> str:
    match = re.search(r"""^appVersion:\s*["']?([^"'\s]+)""", chart_text, re.MULTILINE)
    if not match:
        raise Failure(f"no appVersion in {CHART}")
    return match.group(1)


def image_name(target: str, version: str) -> str:
    return BASE_IMAGE if target == "base" else f"{IMAGE_PREFIX}/{target}:{version}"


def short_name(target: str, version: str) -> str:
    """The name podman gives `kuberds/TARGET:VERSION`, so that short name keeps working there."""
    return f"localhost/kuberds/{target}:{version}"


# --- base ---


def slim_excluded(path: str) -> bool:
    """Whether the slim image's dpkg config leaves this absolute path out."""
    if not any(fnmatch.fnmatchcase(path, p) for p in SLIM_EXCLUDE):
        return False
    return not any(fnmatch.fnmatchcase(path, p) for p in SLIM_INCLUDE)


def base_recipe_hash() -> str:
    parts = [RECIPE_VERSION, *DEBOOTSTRAP, DEBIAN_MIRROR, APT_SOURCES, *TAR_EXCLUDES, *ROOTFS_EMPTIED, *ROOTFS_REMOVED]
    parts += [f"{k}={v}" for table in (APT_CONFIG, DPKG_CONFIG, ROOTFS_RESETS) for k, v in sorted(table.items())]
    return content_hash(parts)


def empty_directory(directory: Path) -> None:
    """Removes the files under directory and keeps its subdirectories (packages own them)."""
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_file() or path.is_symlink():
            path.unlink()


def slim_rootfs(root: Path) -> None:
    """Gives debootstrap's tree what Docker's debian:bookworm-slim has."""
    for name, text in APT_CONFIG.items():
        (root / "etc/apt/apt.conf.d" / name).write_text(text)
    for name, text in DPKG_CONFIG.items():
        (root / "etc/dpkg/dpkg.cfg.d" / name).write_text(text)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(APT_SOURCES)
    for name, text in ROOTFS_RESETS.items():
        (root / name).write_text(text)
    for name in ROOTFS_EMPTIED:
        empty_directory(root / name)
    for pattern in ROOTFS_REMOVED:
        for path in root.glob(pattern):
            path.unlink()
    for path in list((root / "usr/share").rglob("*")):
        if (path.is_file() or path.is_symlink()) and slim_excluded("/" + str(path.relative_to(root))):
            path.unlink()


def mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve()) + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space
        if point.startswith(prefix):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(directory: Path) -> None:
    """Removes a debootstrap tree, unmounting whatever a failed run left mounted in it first:
    rm -r through a mounted /proc or /sys would be a disaster."""
    for point in mounts_under(directory):
        subprocess.run(["umount", "-l", point], check=False)
    if mounts_under(directory):
        raise Failure(f"{directory} still has mounts; not removing it")
    shutil.rmtree(directory, ignore_errors=True)


class DebootstrapPhases:
    """Shows the first debootstrap line of each phase (the verb after 'I:'), not one per package;
    warnings and errors always."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, line: str) -> str | None:
        if line.startswith(("W:", "E:")):
            return line
        words = line.split()
        if words[:1] != ["I:"] or len(words) < 2 or words[1] in self.seen:
            return None
        self.seen.add(words[1])
        return line


def import_rootfs(root: Path, started: float) -> None:
    """Pipes the tree into `podman import` under the base image's name, labelled with the recipe."""
    excludes = [f"--exclude={p}" for p in TAR_EXCLUDES]
    tar_flags = ["--numeric-owner", "--xattrs", "--xattrs-include=*", *excludes]
    tar = subprocess.Popen(["tar", *tar_flags, "-C", str(root), "-cf", "-", "."], stdout=subprocess.PIPE)
    changes = ["--change", 'CMD ["bash"]', "--change", f"LABEL {HASH_LABEL}={base_recipe_hash()}"]
    message = ["--message", "debootstrap --variant=minbase bookworm, slimmed by hack/images.py"]
    assert tar.stdout is not None
    try:
        stream(["podman", "import", *changes, *message, "-", BASE_IMAGE], lambda _: None, started, stdin=tar.stdout)
    finally:
        tar.stdout.close()  # podman is done reading: a tar still writing gets SIGPIPE, not a hang
    if tar.wait() != 0:
        raise Failure("tar of the debootstrap tree failed")


def make_base() -> None:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="kuberds-base."))
    try:
        root = work / "rootfs"
        stream([*DEBOOTSTRAP, str(root), DEBIAN_MIRROR], DebootstrapPhases(), started)
        slim_rootfs(root)
        step(started, "slimmed; importing into podman")
        import_rootfs(root, started)
    finally:
        remove_tree(work)


def ensure_base(force: bool) -> str:
    """Returns the base image's ID, making the image first if podman lacks it."""
    image = inspect_image(BASE_IMAGE)
    recipe = base_recipe_hash()
    label = image_label(image, HASH_LABEL)
    if image is not None and not force and label in (recipe, None):
        origin = "made by hack/images.py" if label else "not made here: used as it is"
        say(f"==> base {BASE_IMAGE}: cached ({origin}; {short_id(image['Id'])}, {human_size(image['Size'])})")
        return image["Id"]
    reason = "forced" if force else "missing" if image is None else "recipe changed"
    say(f"==> base {BASE_IMAGE}: building ({reason}; debootstrap, about 30 s)")
    started = time.monotonic()
    make_base()
    image = inspect_image(BASE_IMAGE)
    if image is None:
        raise Failure(f"podman import did not create {BASE_IMAGE}")
    say(f"    built in {time.monotonic() - started:.1f}s: {short_id(image['Id'])}, {human_size(image['Size'])}")
    return image["Id"]


# --- the Dockerfile's targets ---


def bin_dir() -> Path:
    """Where hack/build-binaries.sh keeps its binaries; builds them when weed is missing."""
    script = REPO / "hack" / "build-binaries.sh"
    directory = Path(run(["bash", str(script), "--print-bin-dir"]).strip())
    if not (directory / "weed").is_file():
        say("==> weed is not built yet: running hack/build-binaries.sh (cached per tool group)")
        stream(["bash", str(script)], lambda line: line, time.monotonic())
    return directory


# The named build contexts the Dockerfile copies from, resolved only when a target needs one.
NAMED_CONTEXTS: dict[str, Callable[[], Path]] = {"weed-bin": bin_dir}


@dataclass(frozen=True)
class Plan:
    """Everything one target is made from. Its hash becomes the image's content label."""

    target: str
    instructions: tuple[str, ...]
    images: dict[str, str]  # reference -> podman image ID
    context_files: tuple[str, ...]  # relative to the repository
    named_contexts: dict[str, Path]
    named_files: tuple[tuple[str, Path], ...]  # (context/path, file)
    build_args: dict[str, str]

    def hash_parts(self) -> Iterator[str]:
        yield f"recipe {RECIPE_VERSION}"
        yield from self.instructions
        yield from (f"image {ref} {image_id}" for ref, image_id in sorted(self.images.items()))
        yield from (f"file {name} {file_digest(REPO / name)}" for name in self.context_files)
        yield from (f"named {name} {file_digest(path)}" for name, path in self.named_files)
        yield from (f"arg {k}={v}" for k, v in sorted(self.build_args.items()))

    def content_hash(self) -> str:
        return content_hash(self.hash_parts())


def plan(target: str, stages: list[Stage]) -> Plan:
    closure = stage_closure(stages, target)
    refs, outside = external_refs(closure, NAMED_CONTEXTS)
    images = {}
    for ref in refs:
        image = inspect_image(ref)
        if image is None:
            raise Failure(f"{target} starts from {ref}, which podman does not have (and cannot pull)")
        images[ref] = image["Id"]
    contexts = {name: NAMED_CONTEXTS[name]() for name in {c.origin for c in outside if c.origin}}
    files = [(f"{c.origin}/{n}", p) for c in outside if c.origin for n, p in named_files(contexts[c.origin], c.sources)]
    context_sources = [s for c in outside if c.origin is None for s in c.sources]
    return Plan(
        target=target,
        instructions=tuple(i for s in closure for i in s.instructions),
        images=images,
        context_files=tuple(git_files(context_sources)),
        named_contexts=contexts,
        named_files=tuple(files),
        build_args=BUILD_ARGS.get(target, {}),
    )


def stage_context(files: Iterable[str], destination: Path) -> None:
    """Copies exactly the hashed files into a fresh build context, so what podman sees is
    what the hash covers."""
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target, follow_symlinks=False)


def build_command(p: Plan, names: list[str], content: str, context: Path) -> list[str]:
    cmd = ["podman", "build", "--isolation=chroot", "--network=host", "--pull=never", "--layers"]
    if CA_BUNDLE.is_file():
        cmd += ["--secret", f"id=ca-bundle,src={CA_BUNDLE}"]
    for name, directory in sorted(p.named_contexts.items()):
        cmd += ["--build-context", f"{name}={directory}"]
    for key, value in sorted(p.build_args.items()):
        cmd += ["--build-arg", f"{key}={value}"]
    cmd += ["--label", f"{HASH_LABEL}={content}", "--target", p.target, "-f", str(DOCKERFILE)]
    for name in names:
        cmd += ["--tag", name]
    return [*cmd, str(context)]


class BuildSteps:
    """Shows podman's STEP lines and counts the steps its layer cache answered."""

    def __init__(self) -> None:
        self.steps = 0
        self.cached = 0

    def __call__(self, line: str) -> str | None:
        if line.startswith("--> Using cache"):
            self.cached += 1
        if re.search(r"STEP \d+/\d+:", line):
            self.steps += 1
            return line
        return None


def build_target(target: str, stages: list[Stage], version: str, force: bool) -> bool:
    """Builds target unless podman has it with the same content; says whether it built."""
    name = image_name(target, version)
    p = plan(target, stages)
    content = p.content_hash()
    existing = inspect_image(name)
    if existing is not None and not force and image_label(existing, HASH_LABEL) == content:
        if inspect_image(short_name(target, version)) is None:
            run(["podman", "tag", name, short_name(target, version)])
        say(f"==> {target} {name}: cached ({short_id(existing['Id'])}, {human_size(existing['Size'])})")
        return False
    reason = "forced" if force else "missing" if existing is None else "inputs changed"
    say(f"==> {target} {name}: building ({reason}; content {content[:12]})")
    started = time.monotonic()
    steps = BuildSteps()
    with tempfile.TemporaryDirectory(prefix=f"kuberds-context-{target}.") as context:
        stage_context(p.context_files, Path(context))
        cmd = build_command(p, [name, short_name(target, version)], content, Path(context))
        stream(cmd, steps, started)
    image = inspect_image(name)
    if image is None or image_label(image, HASH_LABEL) != content:
        raise Failure(f"podman build finished but {name} does not carry content {content[:12]}")
    summary = f"{steps.steps} steps, {steps.cached} from podman's layer cache"
    elapsed = time.monotonic() - started
    say(f"    built in {elapsed:.1f}s: {short_id(image['Id'])}, {human_size(image['Size'])}, {summary}")
    return True


def build(targets: list[str], version: str, force: bool) -> None:
    ensure_base(force and "base" in targets)
    stages = parse_stages(DOCKERFILE.read_text())
    built = [target for target in targets if target != "base" and build_target(target, stages, version, force)]
    if built:
        prune_replaced()


def prune_replaced() -> None:
    """Removes the images a rebuild left without a name (ours only: they carry the content
    label). Each rebuild leaves a few GB behind; dozens of them once filled the disk until the
    nodes could not start pods."""
    started = time.monotonic()
    removed = run(["podman", "image", "prune", "--force", "--filter", f"label={HASH_LABEL}"]).split()
    step(started, f"removed {len(removed)} replaced kuberds images and their build layers")


# --- loading into containerd ---


def containerd_sockets(explicit: list[str]) -> list[Path]:
    found = sorted(p for p in state_dir().glob("nodes/*/containerd.sock") if p.is_socket())
    given = [Path(a) for a in explicit]
    for path in given:
        if not path.is_socket():
            raise Failure(f"--address {path}: no socket there")
    return list(dict.fromkeys([*given, *found]))


def ctr(socket: Path, *args: str) -> str:
    return run(["ctr", "--address", str(socket), "-n", CONTAINERD_NAMESPACE, *args])


def image_digest(listing: str, ref: str) -> str | None:
    """The target digest of ref in `ctr images ls` output (REF TYPE DIGEST SIZE ...)."""
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[0] == ref:
            return fields[2]
    return None


def config_digest(manifest: dict, fetch: Callable[[str], dict]) -> str | None:
    """The image config's digest (podman's image ID) behind a manifest or an index."""
    if "config" in manifest:
        return manifest["config"]["digest"]
    for entry in manifest.get("manifests", []):
        if entry.get("platform", {}).get("os", "linux") == "linux":
            return config_digest(fetch(entry["digest"]), fetch)
    return None


def loaded_image_id(socket: Path, ref: str) -> str | None:
    digest = image_digest(ctr(socket, "images", "ls"), ref)
    if digest is None:
        return None

    def fetch(d: str) -> dict:
        return json.loads(ctr(socket, "content", "get", d))

    return config_digest(fetch(digest), fetch)


def import_image(socket: Path, archive: Path, ref: str, image_id: str) -> None:
    started = time.monotonic()
    cmd = ["ctr", "--address", str(socket), "-n", CONTAINERD_NAMESPACE, "images", "import", str(archive)]
    stream(cmd, lambda line: f"{socket.parent.name}: {line}", started)
    if loaded_image_id(socket, ref) != image_id:
        raise Failure(f"{socket}: {ref} is not image {short_id(image_id)} after the import")


def save_archive(ref: str, directory: Path) -> Path:
    """A docker-archive keeps the image's config as is (its digest is podman's image ID) and
    names the image in full, which `ctr images import` keeps."""
    started = time.monotonic()
    archive = directory / (ref.rsplit("/", 1)[-1].replace(":", "_") + ".tar")
    cmd = ["podman", "save", "--quiet", "--format", "docker-archive", "-o", str(archive), ref]
    stream(cmd, lambda _: None, started)
    step(started, f"saved {ref} ({human_size(archive.stat().st_size)})")
    return archive


def load(targets: list[str], version: str, addresses: list[str]) -> None:
    sockets = containerd_sockets(addresses)
    if not sockets:
        say(f"==> load: no containerd sockets under {state_dir()}/nodes and no --address: nothing to load")
        return
    say(f"==> load into {len(sockets)} containerd: {', '.join(map(str, sockets))}")
    with tempfile.TemporaryDirectory(prefix="kuberds-images.") as scratch:
        for target in targets:
            load_target(image_name(target, version), sockets, Path(scratch))


def load_target(ref: str, sockets: list[Path], scratch: Path) -> None:
    image = inspect_image(ref)
    if image is None:
        raise Failure(f"podman has no {ref}: run `python3 hack/images.py build` first")
    image_id = "sha256:" + image["Id"]
    stale = [s for s in sockets if loaded_image_id(s, ref) != image_id]
    for socket in sockets:
        if socket not in stale:
            say(f"    {ref} -> {socket}: cached ({short_id(image_id)})")
    if not stale:
        return
    archive = save_archive(ref, scratch)
    for socket in stale:
        say(f"    {ref} -> {socket}: importing ({human_size(image['Size'])})")
    # The nodes import side by side: most of an import is writing out layers, not computing.
    with ThreadPoolExecutor(max_workers=len(stale)) as pool:
        for imported in [pool.submit(import_image, socket, archive, ref, image_id) for socket in stale]:
            imported.result()
    archive.unlink()


# --- command line ---


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # One positional list, so `--list s3` is not read as a command called s3.
    parser.add_argument("words", nargs="*", metavar="COMMAND [TARGET ...]", help=f"targets: {', '.join(ALL_TARGETS)}")
    parser.add_argument("--list", action="store_true", help="print the image names and exit")
    parser.add_argument("--address", action="append", default=[], metavar="SOCK", help="also load into this containerd")
    parser.add_argument("--force", action="store_true", help="build the named targets even when cached")
    args = parser.parse_args(argv)
    words = args.words
    args.command = words.pop(0) if words and words[0] in COMMANDS else None
    args.targets = words
    unknown = [t for t in args.targets if t not in ALL_TARGETS]
    if unknown:
        parser.error(f"unknown target or command {', '.join(unknown)}; commands: {', '.join(COMMANDS)}")
    if not args.command and not args.list:
        parser.error(f"give a command ({', '.join(COMMANDS)}) or --list")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    version = chart_version(CHART.read_text())
    targets = [t for t in ALL_TARGETS if t in args.targets] or list(ALL_TARGETS)
    if args.list:
        for target in targets:
            print(f"{target:<9} {image_name(target, version)}")
        return 0
    started = time.monotonic()
    try:
        if args.command in ("build", "all"):
            build(targets, version, args.force)
        if args.command in ("load", "all"):
            load([t for t in targets if t != "base"], version, args.address)
    except Failure as failure:
        say(f"FAILED: {failure}")
        return 1
    say(f"==> {args.command} done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
