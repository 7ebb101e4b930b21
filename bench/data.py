"""The data sets: (a) incompressible bytes, (b) a compressible tree of many small
files built from what this machine has, and the deterministic 1% change that
makes incremental (c). Built once into read-only "golden" subvolumes that every
contender's share is a CoW snapshot of, so all of them send identical extents."""

import gzip
import os
import random
import shutil
import subprocess

MiB = 1 << 20


def write_incompressible(directory, total, files=4):
    """`total` bytes from the kernel's CSPRNG (fast, and not compressible by
    zstd at any level) in a few large files, like disk images or videos."""
    per = total // files
    chunk = 4 * MiB
    for i in range(files):
        with open(os.path.join(directory, f"blob{i}.bin"), "wb") as f:
            left = per
            while left > 0:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n


def _sources():
    """Text-like trees this machine has; man pages are gunzipped on the way so
    the tree is compressible the way a share of documents and code is."""
    home = os.path.expanduser("~")
    return [p for p in ("/usr/share/doc", "/usr/share/man", "/usr/include",
                        os.path.join(home, ".cargo/registry/src")) if os.path.isdir(p)]


def write_tree(directory, total):
    """Copies of the source trees (round after round if they are small) until
    `total` bytes are written; symlinks and special files are skipped."""
    written = 0
    rnd = 0
    while written < total:
        for src in _sources():
            base = os.path.join(directory, f"r{rnd}", src.strip("/").replace("/", "_"))
            for root, dirs, files in os.walk(src):
                dirs.sort()
                rel = os.path.relpath(root, src)
                out = os.path.normpath(os.path.join(base, rel))
                os.makedirs(out, exist_ok=True)
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    try:
                        if name.endswith(".gz") and src.endswith("/man"):
                            with gzip.open(path, "rb") as fi, open(os.path.join(out, name[:-3]), "wb") as fo:
                                shutil.copyfileobj(fi, fo)
                                written += fo.tell()
                        else:
                            shutil.copyfile(path, os.path.join(out, name))
                            written += os.path.getsize(path)
                    except (OSError, EOFError):
                        continue  # an unreadable or broken file is not worth failing for
                    if written >= total:
                        return written
        rnd += 1
        if rnd > 1000:
            raise RuntimeError("no source trees to build the compressible data set from")
    return written


def _pieces(directory, fraction, block, seed):
    """Where the 1% change goes: `block`-sized pieces at seeded random
    4 KiB-aligned offsets of the blobs, the same ones every time."""
    blobs = sorted(n for n in os.listdir(directory) if n.startswith("blob"))
    sizes = {n: os.path.getsize(os.path.join(directory, n)) for n in blobs}
    count = max(1, int(sum(sizes.values()) * fraction) // block)
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        name = rng.choice(blobs)
        out.append((name, rng.randrange(0, max(1, sizes[name] - block)) // 4096 * 4096))
    return out


def change_one_percent(directory, fraction=0.01, block=128 * 1024, seed=5):
    """Overwrites `fraction` of the blobs in place with seeded random bytes: the
    same blocks and bytes every repetition, so every incremental sends the same diff."""
    rng = random.Random(seed + 1)
    pieces = _pieces(directory, fraction, block, seed)
    for name, offset in pieces:
        with open(os.path.join(directory, name), "r+b") as f:
            f.seek(offset)
            f.write(rng.randbytes(block))
    return len(pieces) * block


def revert_one_percent(directory, golden, fraction=0.01, block=128 * 1024, seed=5):
    """Puts the original bytes back at the same places. The share keeps its
    identity (uuid), which btrbk and ferry use to find their parent; only
    those blocks get new extents, so the next change sends the same diff again."""
    for name, offset in _pieces(directory, fraction, block, seed):
        with open(os.path.join(golden, name), "rb") as g, open(os.path.join(directory, name), "r+b") as f:
            g.seek(offset)
            f.seek(offset)
            f.write(g.read(block))


def _image_pieces(size, pieces, piece, seed):
    """Where the image's data lies: `pieces` distinct `piece`-aligned offsets."""
    rng = random.Random(seed)
    return sorted(rng.sample(range(size // piece), pieces))


def write_sparse_image(directory, size, pieces, piece=MiB, seed=7):
    """A VM disk image: a `size`-byte sparse file with `pieces` scattered
    `piece`-sized writes of incompressible data (a guest's blocks), the rest holes."""
    path = os.path.join(directory, "disk.img")
    with open(path, "wb") as f:
        f.truncate(size)
        for i in _image_pieces(size, pieces, piece, seed):
            f.seek(i * piece)
            f.write(os.urandom(piece))
    return pieces * piece


def _image_change(directory, pieces, piece=MiB, seed=7):
    """The incremental's two places: 64 KiB inside the first data piece, and
    the whole last piece (1 MiB) to punch."""
    path = os.path.join(directory, "disk.img")
    where = _image_pieces(os.path.getsize(path), pieces, piece, seed)
    return path, where[0] * piece + 64 * 1024, where[-1] * piece, piece


def change_sparse_image(directory, pieces, seed=9):
    """A guest's small change: 64 KiB rewritten in place, one 1 MiB piece
    discarded (a hole punched, as a guest's TRIM does through virtio)."""
    path, write_at, punch_at, punch_len = _image_change(directory, pieces)
    with open(path, "r+b") as f:
        f.seek(write_at)
        f.write(random.Random(seed).randbytes(64 * 1024))
    subprocess.run(["fallocate", "--punch-hole", "--keep-size", "-o", str(punch_at), "-l", str(punch_len), path],
                   check=True)


def revert_sparse_image(directory, golden, pieces):
    """Puts the golden bytes back at both places, so the next change makes the same diff."""
    path, write_at, punch_at, punch_len = _image_change(golden, pieces)
    mine = os.path.join(directory, "disk.img")
    with open(path, "rb") as g, open(mine, "r+b") as f:
        for at, n in ((write_at, 64 * 1024), (punch_at, punch_len)):
            g.seek(at)
            f.seek(at)
            f.write(g.read(n))
