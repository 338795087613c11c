# The two commands of the README. Both set everything up first (fast when already done).
.PHONY: setup demo test lint schemas

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/imgdup demo $(ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: setup lint
	@bash scripts/setup-system.sh
	.venv/bin/python -m pytest $(ARGS)

schemas: setup
	.venv/bin/python -m schemas.export
