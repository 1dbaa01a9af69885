"""`python -m kubeinfer.cli.main`: the same command as the `kubeinfer` script."""

from kubeinfer.cli.app import app

if __name__ == "__main__":
    app()
