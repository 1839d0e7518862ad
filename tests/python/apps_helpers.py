"""What the Python tests of the apps share: where ctest put the apps (RNNKIT_APPS) and the
source tree (RNNKIT_SOURCE_DIR), and running an app's command line."""
import json
import os
import subprocess

APPS = os.environ.get("RNNKIT_APPS")
SOURCE = os.environ.get("RNNKIT_SOURCE_DIR")
NOT_SET = "RNNKIT_APPS and RNNKIT_SOURCE_DIR are not set (ctest sets them when the apps are built)"


def app(name, *args, **kwargs):
    """The standard output of `rnnkit-NAME ARGS...`, which must succeed."""
    return subprocess.run([os.path.join(APPS, "rnnkit-" + name), *args], check=True,
                          capture_output=True, text=True, **kwargs).stdout


def json_lines(text):
    """The JSON objects of a --json output, one per non-blank line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
