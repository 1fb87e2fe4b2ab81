#!/usr/bin/env python3
"""Packs one static binary as a single-layer OCI image archive for `ctr images import`.

usage: cluster-oci.py <binary> <path in image> <image name> <out.tar>

The node's sandbox image is made this way because no registry is reachable here. Only the
standard library: a layer tar, the image config, the manifest and index, content-addressed.
"""
import gzip, hashlib, io, json, sys, tarfile

binary, target, name, out = sys.argv[1:5]

def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data

layer_tar = io.BytesIO()
with tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.PAX_FORMAT) as t:
    info = t.gettarinfo(binary, arcname=target.lstrip("/"))
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o755
    with open(binary, "rb") as f:
        t.addfile(info, f)
diff_id, raw = blob(layer_tar.getvalue())
layer_digest, layer = blob(gzip.compress(raw, mtime=0))
config_digest, config = blob(json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": [target], "User": "65535:65535"},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
}, sort_keys=True).encode())
manifest_digest, manifest = blob(json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": len(layer)}],
}, sort_keys=True).encode())
index = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                   "size": len(manifest), "annotations": {"io.containerd.image.name": name,
                                                          "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}],
}).encode()

with tarfile.open(out, "w") as t:
    def add(path, data):
        info = tarfile.TarInfo(path)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    add("index.json", index)
    for digest, data in ((layer_digest, layer), (config_digest, config), (manifest_digest, manifest)):
        add("blobs/sha256/" + digest.split(":")[1], data)
