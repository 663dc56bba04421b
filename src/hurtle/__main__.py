"""``python -m hurtle``: the CLI, for when the ``hurtle`` script is not on PATH.

``hurtle demo`` starts its worker this way, with the same interpreter it runs on.
"""

from hurtle.cli import main

if __name__ == "__main__":
    main()
