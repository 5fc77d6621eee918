import sys

from nsbox.cli import prelude

prelude(sys.argv[1:])

from nsbox.cli.main import entry  # noqa: E402

entry()
