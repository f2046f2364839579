from autoshield.cli.app import program

raise SystemExit(program())
