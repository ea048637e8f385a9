"""`python -m cf`: the `cf-http` command."""

from cf._cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
