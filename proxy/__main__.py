"""`python -m proxy`: the same as the `megarouter` console script."""

from proxy.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
