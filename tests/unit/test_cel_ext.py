"""The CEL library's compiled module, loaded without its interactive shell."""

import subprocess
import sys


def test_the_extension_loads_alone_and_the_package_still_imports_after_it() -> None:
    code = (
        "import sys\n"
        "from amimesh.resources import cel_ext\n"
        "c = cel_ext.load()\n"
        "assert 'prompt_toolkit' not in sys.modules, 'the shell was imported'\n"
        "assert c.evaluate('a + 2', {'a': 1}) == 3\n"
        "c.compile('body.ref == \"refs/heads/main\"')\n"
        "import cel\n"
        "assert cel.evaluate('2 * 3') == 6\n"
        "assert sys.modules['cel.cel'] is c\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
