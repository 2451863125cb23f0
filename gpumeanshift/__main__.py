"""``python -m gpumeanshift``: the same command line as ``gpumeanshift``."""

if __name__ == "__main__":  # not when imported (pytest --doctest-modules imports it)
    from .cli import main

    raise SystemExit(main())
