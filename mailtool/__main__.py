"""``python -m mailtool``."""

from mailtool.cli.main import main

if __name__ == "__main__":
    main()
