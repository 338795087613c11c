"""Image bytes on stdin -> decoded once in this fresh process with the worker's default caps; the
outcome and the process's peak resident memory before and after, as JSON on stdout
(`python -m imgdup.ops.decode_probe`, run by `imgdup bad-inputs` once per image)."""

from __future__ import annotations

import json
import resource
import sys

from imgdup_core.decode import ImageRejected, decode_image


def _maxrss_kib() -> int:
    """This process's peak resident memory in KiB: VmHWM, the high-water mark of its own memory map.
    Not getrusage's ru_maxrss: Linux carries the parent's peak into a child across fork and exec,
    so a child of a big process would report the parent's peak and hide its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def main() -> None:
    data = sys.stdin.buffer.read()
    before = _maxrss_kib()
    try:
        decode_image(data)
        outcome = "indexed"
    except ImageRejected as exc:
        outcome = exc.reason
    print(json.dumps({"outcome": outcome, "before_kib": before, "peak_kib": _maxrss_kib()}))


if __name__ == "__main__":
    main()
