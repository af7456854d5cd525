"""docs/elements.md must equal a fresh generation by docs/gen-elements.py from the built plugin."""
import difflib
import sys

from example_support import check, python_with_gi, run

gen, committed = sys.argv[1], sys.argv[2]
r = run([python_with_gi(), gen], timeout=60)
check(r.returncode == 0, "gen-elements.py failed: " + r.stderr)
with open(committed) as f:
    old = f.read()
if old != r.stdout:
    sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), r.stdout.splitlines(True),
                                               "docs/elements.md", "generated"))
    check(False, "docs/elements.md is out of date: regenerate it with\n"
                 "  GST_PLUGIN_PATH=<build>/gst /usr/bin/python3 docs/gen-elements.py > docs/elements.md")
for must in ("## `voxcpmtts`", "## `voxcpmsrc`", "`speak(gchararray)`", "| `model-path` |", "`overflow`"):
    check(must in old, "elements.md lacks " + must)
print("ok")
