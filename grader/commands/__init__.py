"""One module per command that is more than a call (cli.py parses and dispatches): `grader check`
(check.py), `grader prepare` (prepare.py), `grader merge` (merge.py)."""
