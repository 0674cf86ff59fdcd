"""`python -m courier`: the courier command (courier.cli)."""

from courier.cli import main

main()
