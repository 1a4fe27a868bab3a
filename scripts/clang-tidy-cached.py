#!/usr/bin/env python3
"""clang-tidy over many files, skipping those whose input it found clean before.

Usage: clang-tidy-cached.py BUILD_DIR FILE...

A file's input is everything clang-tidy sees: the clang-tidy version, the
.clang-tidy checks, the file's compile command, and the file preprocessed
with its comments kept (so every header it includes, and every NOLINT, is
part of it). A file that clang-tidy passed is recorded under the SHA-256 of
that input (paths under the tree, the working directory, taken relative to
it) in the cache directory (DST_TIDY_CACHE, default
~/.cache/dst-clang-tidy), so an unchanged file is not analysed again; as
ccache does for compiling. Findings are never cached: a file with findings
is analysed every time. DST_TIDY_CACHE=off disables the cache.

Runs one clang-tidy per core; prints the findings and exits 1 if any file
has one, else prints how many files were analysed and how many were cached.
"""

import concurrent.futures
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time


def preprocess_command(entry):
    """The entry's compile command, made to print the preprocessed file."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "-o":
            skip = True
            continue
        if arg == "-c" or arg.startswith("-M"):
            continue
        out.append(arg)
    return out + ["-E", "-C", "-o", "-"]


def input_key(entry, common, root):
    """SHA-256 of what clang-tidy sees of this file, or None if unknown.

    Paths under `root` (the tree) are hashed relative to it, so that a
    clone elsewhere (CI's fresh one) hits what another clone passed.
    """
    result = subprocess.run(
        preprocess_command(entry),
        cwd=entry["directory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        return None  # clang-tidy will say why
    command = entry.get("command", " ".join(entry.get("arguments", [])))
    h = hashlib.sha256()
    h.update(common)
    for text in (entry["file"], command, entry["directory"]):
        h.update(text.replace(root, "<root>").encode() + b"\0")
    h.update(result.stdout.replace(root.encode(), b"<root>"))
    return h.hexdigest()


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    build = sys.argv[1]
    files = sys.argv[2:]
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = {os.path.realpath(e["file"]): e for e in json.load(f)}
    cache = os.environ.get(
        "DST_TIDY_CACHE",
        os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                     "dst-clang-tidy"))
    use_cache = cache != "off"
    if use_cache:
        os.makedirs(cache, exist_ok=True)
    version = subprocess.run(["clang-tidy", "--version"], stdout=subprocess.PIPE,
                             check=True).stdout
    root = os.getcwd()  # the tree: lint.sh runs from it
    with open(".clang-tidy", "rb") as f:
        common = version + b"\0" + f.read() + b"\0"

    def lint(path):
        entry = entries.get(os.path.realpath(path))
        key = input_key(entry, common, root) if (use_cache and entry) else None
        marker = os.path.join(cache, key) if key else None
        if marker and os.path.exists(marker):
            os.utime(marker)  # kept by the pruning below
            return path, True, 0, ""
        result = subprocess.run(["clang-tidy", "-p", build, "--quiet", path],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        clean = result.returncode == 0 and not result.stdout.strip()
        if clean and marker:
            open(marker, "w").close()
        return path, False, result.returncode, result.stdout

    failed = 0
    cached = 0
    jobs = os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for path, hit, code, output in pool.map(lint, files):
            cached += hit
            if code != 0 or output.strip():
                failed += 1
                sys.stdout.write(output if output.strip() else
                                 f"{path}: clang-tidy exited {code}\n")
    if use_cache:
        # Markers unused for 30 days go (each is an empty file).
        horizon = time.time() - 30 * 86400
        for name in os.listdir(cache):
            marker = os.path.join(cache, name)
            if os.path.getmtime(marker) < horizon:
                os.remove(marker)
    if failed:
        print(f"clang-tidy: findings in {failed} of {len(files)} files", file=sys.stderr)
        return 1
    print(f"clang-tidy: {len(files)} files clean ({cached} unchanged since a clean run, "
          f"cache {cache if use_cache else 'off'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
